/**
 * A guess at the protocol of a stream that is not HTTP, for the connection record: the ALPN
 * protocol the client negotiated when it names one, else the first bytes of whichever side
 * spoke first. Server-first protocols are told apart by their greetings (IMAP RFC 9051 7.1
 * "* OK", POP3 RFC 1939 "+OK", SMTP RFC 5321 and FTP RFC 959 "220"), client-first ones by a
 * few well-known openings. Only a label: nothing is decided by it.
 */
export function guessStreamProtocol(alpn: string | null, clientFirst: Buffer | null, originFirst: Buffer | null): string {
  if (alpn) return alpn;
  if (originFirst && originFirst.length > 0) return guessGreeting(originFirst.subarray(0, 128).toString('latin1'));
  if (clientFirst && clientFirst.length > 0) return guessClientOpening(clientFirst.subarray(0, 64).toString('latin1'));
  return 'unknown';
}

function guessGreeting(text: string): string {
  if (text.startsWith('* OK') || text.startsWith('* PREAUTH')) return 'imap';
  if (text.startsWith('+OK')) return 'pop3';
  if (/^220[ -]/.test(text)) return /\bFTP\b/i.test(text) && !/\bE?SMTP\b/i.test(text) ? 'ftp' : 'smtp';
  if (text.startsWith('SSH-')) return 'ssh';
  return 'unknown';
}

function guessClientOpening(text: string): string {
  if (text.startsWith('SSH-')) return 'ssh';
  if (/^[A-Za-z0-9]+ (?:CAPABILITY|LOGIN|AUTHENTICATE)\b/i.test(text)) return 'imap';
  if (/^(?:EHLO|HELO) /i.test(text)) return 'smtp';
  return 'unknown';
}
