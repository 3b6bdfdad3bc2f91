// Loopback ports: a free one for tests, a clear message when a fixed one is taken, and
// waiting for a server to listen.
import { connect, createServer } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

export const LOOPBACK = '127.0.0.1';

/** Listens on `port` (0: any) for a moment; resolves with the port, or null when it is taken. */
function probe(port: number): Promise<number | null> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EADDRINUSE' || err.code === 'EACCES') resolve(null);
      else reject(err);
    });
    server.listen(port, LOOPBACK, () => {
      const { port: bound } = server.address() as { port: number };
      server.close(() => resolve(bound));
    });
  });
}

export async function freePort(): Promise<number> {
  const port = await probe(0);
  if (port === null) throw new Error('no free port on 127.0.0.1');
  return port;
}

/** The port itself when it is free, a free one for 0; throws naming `what` when it is taken. */
export async function claimPort(port: number, what: string): Promise<number> {
  if (port === 0) return freePort();
  if ((await probe(port)) === null) {
    throw new Error(
      `port ${port} on ${LOOPBACK} (${what}) is already in use: is another \`npm start\` running? ` +
        'Stop it, or pick other ports (`npm start -- --help`).',
    );
  }
  return port;
}

/** Resolves once something accepts TCP connections on the loopback port. */
export async function waitForPort(port: number, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket = connect(port, LOOPBACK);
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`nothing listens on port ${port} after ${timeoutMs} ms`);
    await sleep(50);
  }
}
