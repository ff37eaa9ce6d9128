import type { OnReadOpts } from 'node:net';

/**
 * Wraps a splice's `onread` (origin-reads.ts) so the tunnel learns when the origin sent its
 * first bytes, before they are relayed: an origin that speaks before the client (IMAP, SMTP,
 * POP3, FTP greetings) is a server-first protocol. The bytes themselves are held by
 * OriginReads until the relay starts.
 */
export function watchFirstOriginBytes(onread: OnReadOpts): { readonly onread: OnReadOpts; readonly spoke: AbortSignal } {
  const controller = new AbortController();
  const callback = onread.callback;
  return {
    spoke: controller.signal,
    onread: {
      buffer: onread.buffer,
      callback: (bytes: number, buffer: Uint8Array) => {
        if (bytes > 0 && !controller.signal.aborted) controller.abort();
        return callback(bytes, buffer);
      },
    },
  };
}
