/**
 * The simulator's typed events (Simulator.events). All `wallMs` are epoch milliseconds (fractional).
 */
import type { BotAction } from './app.ts';
import type { Fault, TransportMode } from './scenario.ts';

export interface SimulatorEvents {
  /** The bot identified on the main gateway (op 2 → READY + GUILD_CREATE). */
  identify: [e: { sessionId: string }];
  /** The bot sent op 4: join (channelId) or leave (null). */
  'voice-join': [e: { channelId: string | null; selfDeaf: boolean; selfMute: boolean }];
  /**
   * An op 4 the simulator ignored (unknown channel, missing Connect, channel full), as Discord does; 'ignored': after
   * a 4022 with `then: 'ignored'`.
   */
  'voice-join-refused': [e: { channelId: string; reason: 'unknown-channel' | 'no-permission' | 'full' | 'ignored' }];
  /** The recorder identified on a voice server (op 0 → op 2 Ready). */
  'voice-identify': [e: { endpoint: string; ssrc: number }];
  /** op 4 Session Description sent (transport key handed out). */
  'session-ready': [e: { endpoint: string; mode: TransportMode; daveProtocolVersion: number }];
  /** Scenario time 0: the recorder's voice session became usable (with DAVE: after its first transition). */
  'session-start': [e: { wallMs: number }];
  /**
   * op 5 Speaking sent for a member SSRC: before that SSRC's first packet on the session reaches the recorder
   * (by at least 2 ticks), or, for a member with op5DelayMs, that long after its first packet.
   */
  speaking: [e: { userId: string; ssrc: number }];
  /** A member entered the call (op 11 + VOICE_STATE_UPDATE), with its (new) SSRC. */
  'member-join': [e: { userId: string; ssrc: number; rejoin: boolean; wallMs: number }];
  /** A member left the call (op 13 + VOICE_STATE_UPDATE with channel_id null). */
  'member-leave': [e: { userId: string; wallMs: number }];
  /** A fault was played (scheduled or injected). */
  fault: [e: { fault: Fault; wallMs: number }];
  /** A fault got its outcome ('resumed', 'moved', 'disconnected', 'reidentified', ...). */
  'fault-outcome': [e: { kind: Fault['kind']; outcome: string; wallMs: number }];
  /** A voice session (op 7 → op 9, `replayed` buffered messages) or the main gateway session (op 6) was resumed. */
  resumed: [e: { kind: 'voice' | 'gateway'; wallMs: number; replayed?: number }];
  /** The recorder's voice websocket closed (either side). */
  'voice-ws-close': [e: { code: number; wallMs: number }];
  /** A voice identify was refused with this close code (4004, 4017, scripted rejection). */
  'voice-rejected': [e: { code: number }];
  /**
   * A DAVE transition executed: the group's new epoch and who holds a leaf in it (recorderInGroup: the bot is one
   * of them).
   */
  'dave-transition': [e: { transitionId: number; epoch: bigint; members: string[]; recorderInGroup: boolean; wallMs: number }];
  /**
   * Something unexpected that did not stop the simulator: a DAVE group error, a rejected recorder key package, an
   * op 31 from the recorder, a transition it did not acknowledge, the recorder still not in the group after
   * Scenario.daveJoinTimeoutMs, a DAVE encryption failure.
   */
  warning: [e: { message: string }];
  /** The bot did something members see (a reply, a message, a voice channel status, a nickname, commands registered). */
  'bot-action': [e: BotAction];
}
