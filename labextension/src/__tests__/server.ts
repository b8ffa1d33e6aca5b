/**
 * A real HTTP server on 127.0.0.1 for the client tests: it records what it receives and
 * answers with the handler the test gives (the server extension's side of the contract).
 */
import * as http from 'http';
import type { AddressInfo } from 'net';

export interface Received {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: string;
}

export type Handler = (req: Received, res: http.ServerResponse) => void | Promise<void>;

export class TestServer {
  readonly received: Received[] = [];
  private server: http.Server;
  handler: Handler = (_req, res) => {
    res.statusCode = 404;
    res.end();
  };

  constructor() {
    this.server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', c => chunks.push(c));
      req.on('end', () => {
        const received = { method: req.method || '', url: req.url || '', headers: req.headers, body: Buffer.concat(chunks).toString('utf8') };
        this.received.push(received);
        Promise.resolve(this.handler(received, res)).catch(err => {
          res.statusCode = 500;
          res.end(String(err));
        });
      });
    });
  }

  start(): Promise<void> {
    return new Promise(resolve => this.server.listen(0, '127.0.0.1', () => resolve()));
  }

  get base(): string {
    const { port } = this.server.address() as AddressInfo;
    return `http://127.0.0.1:${port}/user/alice/kqi-7/`;
  }

  stop(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise(resolve => this.server.close(() => resolve()));
  }
}

export function json(res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'Content-Type': 'application/json', ...headers });
  res.end(JSON.stringify(body));
}
