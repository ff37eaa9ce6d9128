import dgram from 'node:dgram';
import net from 'node:net';
import tls from 'node:tls';
import { octetCountingFrame } from '../audit/syslog-format';
import type { SyslogConnector, SyslogLink } from '../audit/syslog-sink';
import { readConfiguredFile } from './configured-file';

export interface SyslogTransportOptions {
  readonly host: string;
  readonly port: number;
  readonly protocol: 'tcp' | 'tls' | 'udp';
  /** tls: extra trust anchors, added to the system's. */
  readonly caFile: string | null;
  readonly connectTimeoutMs?: number;
}

const DEFAULT_CONNECT_TIMEOUT_MS = 5_000;

/** A TCP or TLS connection carrying RFC 6587 octet-counted messages. */
function streamLink(socket: net.Socket): SyslogLink {
  let failure: Error | null = null;
  let closed = false;
  let onClose: ((err: Error | null) => void) | null = null;
  socket.on('error', (err) => (failure = err));
  // The collector closed its side: it reads no more, so whatever is sent next is lost.
  socket.on('end', () => socket.destroy());
  socket.on('close', () => {
    closed = true;
    onClose?.(failure);
  });
  return {
    reliable: true,
    send(message) {
      // Writes within one tick leave in one writev (Node's documented cork pattern).
      socket.cork();
      const more = socket.write(octetCountingFrame(message));
      process.nextTick(() => socket.uncork());
      return more;
    },
    onDrain(callback) {
      socket.once('drain', callback);
    },
    onClose(callback) {
      if (closed) callback(failure);
      else onClose = callback;
    },
    end() {
      return new Promise((resolve, reject) => {
        if (closed) {
          reject(failure ?? new Error('already closed'));
          return;
        }
        onClose = (err) => (err ? reject(err) : resolve());
        socket.end();
      });
    },
    destroy() {
      socket.destroy();
    },
  };
}

function dialStream(options: SyslogTransportOptions, ca: string[] | null): Promise<SyslogLink> {
  return new Promise((resolve, reject) => {
    const timeoutMs = options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
    const socket =
      options.protocol === 'tls'
        ? tls.connect({
            host: options.host,
            port: options.port,
            // The collector's certificate is verified like any origin's: system roots plus ca_file, its name.
            ...(net.isIP(options.host) === 0 ? { servername: options.host } : {}),
            ...(ca ? { ca } : {}),
            minVersion: 'TLSv1.2',
          })
        : net.connect({ host: options.host, port: options.port });
    const timer = setTimeout(() => socket.destroy(new Error(`connect timed out after ${timeoutMs} ms`)), timeoutMs);
    const fail = (err: Error): void => {
      clearTimeout(timer);
      socket.destroy();
      reject(err);
    };
    socket.once('error', fail);
    socket.once(options.protocol === 'tls' ? 'secureConnect' : 'connect', () => {
      clearTimeout(timer);
      socket.removeListener('error', fail);
      socket.setKeepAlive(true, 10_000);
      // The listeners keep a running gateway alive; this connection alone must not keep a
      // process that is stopping (or failed to start) from exiting.
      socket.unref();
      resolve(streamLink(socket));
    });
  });
}

/** UDP: one message per datagram, no framing (RFC 5426); delivery cannot be known. */
function dialDatagram(options: SyslogTransportOptions): Promise<SyslogLink> {
  return new Promise((resolve, reject) => {
    const socket = dgram.createSocket(net.isIPv6(options.host) ? 'udp6' : 'udp4');
    let onClose: ((err: Error | null) => void) | null = null;
    // Errors of a connected UDP socket (an ICMP port unreachable) reach the send callbacks too.
    socket.on('error', () => undefined);
    socket.once('close', () => onClose?.(null));
    socket.connect(options.port, options.host, () => {
      socket.unref();
      resolve({
        reliable: false,
        send(message, failed) {
          socket.send(message, (err) => {
            if (err) failed();
          });
          return true;
        },
        onDrain(callback) {
          setImmediate(callback);
        },
        onClose(callback) {
          onClose = callback;
        },
        end() {
          return new Promise((done) => {
            onClose = () => done();
            socket.close();
          });
        },
        destroy() {
          try {
            socket.close();
          } catch {
            // Already closed.
          }
        },
      });
    });
    socket.once('error', (err) => {
      try {
        socket.close();
      } catch {
        // Already closed.
      }
      reject(err);
    });
  });
}

/** Connections to the configured syslog collector (audit.syslog). Reads ca_file now: a wrong path fails start-up, not every connect. */
export function syslogConnector(options: SyslogTransportOptions): SyslogConnector {
  if (options.protocol === 'udp') return () => dialDatagram(options);
  const ca = options.caFile ? [...tls.rootCertificates, readConfiguredFile(options.caFile, 'audit.syslog.ca_file')] : null;
  return () => dialStream(options, ca);
}
