/**
 * The simulated voice server's UDP side: answers IP discovery (74-byte request type 1 → response type 2
 * with the address and port it saw), echoes the client's 8-byte keepalives like Discord does, and sends
 * media to the client's address (learnt from discovery, confirmed by Select Protocol).
 */
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { EventEmitter } from 'node:events';

export interface ClientAddress {
  address: string;
  port: number;
}

export interface VoiceUdpEvents {
  /** IP discovery from the recorder (its SSRC and where the datagram came from). */
  discovery: [ssrc: number, from: ClientAddress];
  keepalive: [from: ClientAddress];
  /** Anything else the client sends (its own RTP, if it speaks). */
  datagram: [msg: Buffer, from: ClientAddress];
}

export class VoiceUdp extends EventEmitter<VoiceUdpEvents> {
  readonly #socket: Socket;
  #port = 0;
  #closed = false;
  /** Datagrams and bytes sent, for tests and the ground truth. */
  sent = 0;

  constructor() {
    super();
    this.#socket = createSocket('udp4');
    this.#socket.on('message', (msg, rinfo) => this.#onMessage(msg, rinfo));
    // A send to a closed client port yields ICMP errors on some systems; never fatal for the simulator.
    this.#socket.on('error', () => {});
  }

  async listen(): Promise<number> {
    await new Promise<void>((resolve) => this.#socket.bind(0, '127.0.0.1', resolve));
    this.#port = this.#socket.address().port;
    return this.#port;
  }

  get port(): number {
    return this.#port;
  }

  /** Sends one datagram; false when the socket is closed (nothing sent). */
  send(buf: Buffer, to: ClientAddress): boolean {
    if (this.#closed) return false;
    this.sent++;
    this.#socket.send(buf, to.port, to.address);
    return true;
  }

  close(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    this.#closed = true;
    return new Promise((resolve) => this.#socket.close(() => resolve()));
  }

  #onMessage(msg: Buffer, rinfo: RemoteInfo): void {
    const from = { address: rinfo.address, port: rinfo.port };
    if (msg.length === 74 && msg.readUInt16BE(0) === 1 && msg.readUInt16BE(2) === 70) {
      const ssrc = msg.readUInt32BE(4);
      const res = Buffer.alloc(74);
      res.writeUInt16BE(2, 0);
      res.writeUInt16BE(70, 2);
      res.writeUInt32BE(ssrc, 4);
      res.write(rinfo.address, 8, 63, 'utf8'); // NUL-terminated: the rest of the 64 bytes stay 0
      res.writeUInt16BE(rinfo.port, 72);
      this.send(res, from);
      this.emit('discovery', ssrc, from);
      return;
    }
    if (msg.length === 8) {
      this.send(msg, from);
      this.emit('keepalive', from);
      return;
    }
    this.emit('datagram', msg, from);
  }
}
