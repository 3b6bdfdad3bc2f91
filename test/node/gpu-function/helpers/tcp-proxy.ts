// A TCP proxy on loopback between the service and the object server, to make the network
// misbehave on purpose: slow (a per-connection byte rate from server to client) or stalled
// (the next N responses stop after some bytes while the connection stays open).
import { once } from 'node:events';
import { connect, createServer, type Server, type Socket } from 'node:net';

export class TcpProxy {
  readonly port: number;
  private readonly server: Server;
  private readonly sockets = new Set<Socket>();
  /** Server-to-client bytes per second on each connection; null = unlimited. */
  bytesPerSecond: number | null = null;
  /** The next `stallCount` connections go silent after `stallAfterBytes` bytes to the client. */
  stallCount = 0;
  stallAfterBytes = 0;
  stalled = 0;

  private constructor(server: Server, port: number) {
    this.server = server;
    this.port = port;
  }

  static async start(targetPort: () => number): Promise<TcpProxy> {
    let proxy: TcpProxy | null = null;
    const server = createServer((client) => proxy!.handle(client, targetPort()));
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    proxy = new TcpProxy(server, (server.address() as { port: number }).port);
    return proxy;
  }

  get endpoint(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  private handle(client: Socket, targetPort: number): void {
    const upstream = connect(targetPort, '127.0.0.1');
    this.sockets.add(client).add(upstream);
    const stallAt = this.stallCount > 0 ? this.stallAfterBytes : null;
    if (stallAt !== null) this.stallCount--;
    let sent = 0;
    let frozen = false;
    client.on('data', (d) => upstream.write(d));
    upstream.on('data', (chunk: Buffer) => {
      if (frozen) return;
      if (stallAt !== null && sent + chunk.length > stallAt) {
        client.write(chunk.subarray(0, Math.max(0, stallAt - sent)));
        frozen = true;
        this.stalled++;
        upstream.pause();
        return;
      }
      sent += chunk.length;
      client.write(chunk);
      if (this.bytesPerSecond) {
        upstream.pause();
        setTimeout(() => upstream.resume(), (1000 * chunk.length) / this.bytesPerSecond);
      }
    });
    const end = () => {
      client.destroy();
      upstream.destroy();
      this.sockets.delete(client);
      this.sockets.delete(upstream);
    };
    client.on('close', end).on('error', end);
    upstream.on('close', () => !frozen && end()).on('error', end);
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    this.server.close();
    await once(this.server, 'close');
  }
}
