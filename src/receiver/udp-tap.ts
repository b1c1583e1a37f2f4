/**
 * Stage 0 of the receive path: the raw datagrams of the voice connection's UDP socket.
 *
 * `receiver.subscribe()` of @discordjs/voice loses RTP sequence/timestamp, drops packets of SSRCs not yet
 * mapped, and destroys a user's stream on one bad auth tag. Worse, its `VoiceReceiver.onUdpMessage` (attached
 * to every UDP socket the connection creates, subscribed or not) calls `readUInt32BE(8)` on datagrams of
 * 9–11 bytes outside any try/catch: one such datagram from the network ends the process. So the tap both
 * listens to the socket itself and keeps that handler off it, after every networking change (a resume keeps
 * the socket, a server move or rejoin brings a new one and the library re-attaches its handler).
 */
import type { NetworkingState, VoiceConnection, VoiceUDPSocket } from '@discordjs/voice';
import type { Socket } from 'node:dgram';
import { watchNetworking } from './networking-watch.ts';

export type DatagramListener = (datagram: Buffer) => void;

/** Taps one VoiceConnection's UDP socket(s) for as long as it lives. */
export class UdpTap {
  readonly #connection: VoiceConnection;
  readonly #listener: DatagramListener;
  #udp: VoiceUDPSocket | undefined;
  #unwatch: (() => void) | undefined;

  constructor(connection: VoiceConnection, listener: DatagramListener) {
    this.#connection = connection;
    this.#listener = (datagram) => {
      // The tap must never throw back into the socket's emitter (it would surface as an uncaught error).
      try {
        listener(datagram);
      } catch {
        /* counted by the receiver where it can be; a bug here must not end the recording */
      }
    };
    // Neutralise the library handler for sockets created from now on: updateReceiveBindings attaches
    // `receiver.onUdpMessage` by property lookup, so it will attach this no-op instead.
    const receiver = connection.receiver as unknown as { onUdpMessage: (msg: Buffer) => void };
    this.#detachLibraryHandler(receiver.onUdpMessage);
    receiver.onUdpMessage = noop;
    this.#unwatch = watchNetworking(connection, (state) => this.#onNetworkingState(state));
  }

  /** The socket currently tapped (for tests). */
  get socket(): VoiceUDPSocket | undefined {
    return this.#udp;
  }

  /** Stops tapping. */
  close(): void {
    this.#unwatch?.();
    this.#unwatch = undefined;
    this.#udp?.off('message', this.#listener);
    this.#udp = undefined;
  }

  #onNetworkingState(state: NetworkingState): void {
    const udp = Reflect.get(state, 'udp') as VoiceUDPSocket | undefined;
    if (udp !== this.#udp) {
      this.#udp?.off('message', this.#listener);
      this.#udp = udp;
      udp?.on('message', this.#listener);
      if (udp) deepenReceiveBuffer(udp);
    }
    this.#detachLibraryHandler((this.#connection.receiver as unknown as { onUdpMessage: (msg: Buffer) => void }).onUdpMessage);
  }

  #detachLibraryHandler(handler: (msg: Buffer) => void): void {
    const udp = this.#udp ?? (Reflect.get(Reflect.get(this.#connection.state, 'networking')?.state ?? {}, 'udp') as VoiceUDPSocket | undefined);
    if (handler !== noop) udp?.off('message', handler);
  }
}

function noop(): void {}

/**
 * A burst (a flood of hostile datagrams, or the main thread pausing for GC or a disk write) must not make the
 * kernel drop real audio: ask for a 4 MiB receive buffer (Linux caps it at net.core.rmem_max; best effort).
 * The socket may not be bound yet (IP discovery binds it), so retry once it is listening.
 */
function deepenReceiveBuffer(udp: VoiceUDPSocket): void {
  // `socket` is private in the typings but public at runtime (the dgram.Socket the library created).
  const socket = (udp as unknown as { socket: Socket }).socket;
  const apply = (): void => {
    try {
      socket.setRecvBufferSize(4 * 1024 * 1024);
    } catch {
      /* not bound yet, or refused: keep the default */
    }
  };
  apply();
  socket.once('listening', apply);
}
