import { guessStreamProtocol } from './stream-protocol';

describe('guessStreamProtocol', () => {
  const cases: [string, string | null, string | null, string | null, string][] = [
    ['ALPN wins', 'imap', null, '+OK ready', 'imap'],
    ['IMAP greeting', null, null, '* OK [CAPABILITY IMAP4rev1] ready\r\n', 'imap'],
    ['POP3 greeting', null, null, '+OK POP3 ready\r\n', 'pop3'],
    ['SMTP greeting', null, null, '220 mail.example ESMTP ready\r\n', 'smtp'],
    ['FTP greeting', null, null, '220 FTP server ready\r\n', 'ftp'],
    ['SSH banner from the server', null, null, 'SSH-2.0-OpenSSH_9.2\r\n', 'ssh'],
    ['SSH banner from the client', null, 'SSH-2.0-client\r\n', null, 'ssh'],
    ['client IMAP command', null, 'a1 CAPABILITY\r\n', null, 'imap'],
    ['nothing known', null, '\x00\x01\x02', null, 'unknown'],
    ['nothing at all', null, null, null, 'unknown'],
  ];
  test.each(cases)('%s', (_name, alpn, client, origin, expected) => {
    expect(guessStreamProtocol(alpn, client === null ? null : Buffer.from(client, 'latin1'), origin === null ? null : Buffer.from(origin, 'latin1'))).toBe(expected);
  });
});
