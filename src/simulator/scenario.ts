/**
 * What the local Discord plays: a scripted, seeded scenario. All times are milliseconds after the
 * recorder's voice connection became usable ("session start": op 4 sent and, with DAVE, the first
 * transition executed), so a test can reason in the recording's own timeline.
 */
export type TransportMode = 'aead_aes256_gcm_rtpsize' | 'aead_xchacha20_poly1305_rtpsize';

/** A deterministic, distinguishable sound. */
export type Signal =
  | { kind: 'tone'; hz: number; amplitude?: number }
  | { kind: 'chirp'; fromHz: number; toHz: number; periodMs: number; amplitude?: number };

/** A talk spurt: the member speaks from `atMs` for `durationMs` (then sends 5 silence frames and goes quiet). */
export interface Spurt {
  atMs: number;
  durationMs: number;
}

export interface SimMember {
  userId: string;
  username: string;
  displayName?: string;
  bot?: boolean;
  signal: Signal;
  spurts: Spurt[];
  /** In the channel from the start unless set: joins (op 11 + voice state) at this time. */
  joinAtMs?: number;
  /** Leaves (op 13) at this time. */
  leaveAtMs?: number;
  /** Comes back at this time with a NEW random SSRC. */
  rejoinAtMs?: number;
  /** Fraction (0..1) of this member's packets that carry the RTP header extension. Default 0.3. */
  extensionRatio?: number;
}

export interface Impairments {
  /** Independent loss probability per packet. */
  loss?: number;
  /** Probability that a packet is held back and sent after the next 1..3 packets. */
  reorder?: number;
  /** Probability that a packet is sent twice. */
  duplicate?: number;
  /** Uniform extra delay 0..jitterMs per packet. */
  jitterMs?: number;
  /** Gilbert-style burst loss: probability a burst starts on a packet, and its length in packets. */
  burst?: { probability: number; length: number };
}

export type Fault =
  | { atMs: number; kind: 'voice-close'; code: number } // e.g. 4015: the client resumes (op 7 → op 9)
  | { atMs: number; kind: 'voice-server-move' } // new VOICE_SERVER_UPDATE with a new endpoint
  | { atMs: number; kind: 'gateway-reconnect' } // main gateway op 7 Reconnect
  | { atMs: number; kind: 'disconnect-bot' } // voice close 4014 + voice state with channel_id null
  | { atMs: number; kind: 'move-bot'; channelId: string } // a moderator drags the bot to another voice channel
  | { atMs: number; kind: 'hostile'; count: number } // garbage, truncated RTP, bad tags, unknown SSRCs
  | { atMs: number; kind: 'rtcp'; count: number }; // RTCP SR/RR packets

export interface Scenario {
  seed: number;
  guildId: string;
  guildName?: string;
  channelId: string;
  channelName?: string;
  /** The bot's own user id and the token it must present (REST Authorization: Bot <token>, gateway identify). */
  botUserId: string;
  token: string;
  /** The transport modes the voice server offers, in order of preference. Default: both, AES-GCM first. */
  modes?: TransportMode[];
  dave: boolean;
  members: SimMember[];
  impairments?: Impairments;
  faults?: Fault[];
  /** Extra guild channels (text channels, other voice channels...) for error-path tests. */
  extraChannels?: { id: string; type: number; name: string; userLimit?: number }[];
  /** Channel ids the bot may not view / connect to (REST 403, missing permission bits). */
  denyView?: string[];
  denyConnect?: string[];
  /** Voice channel user limit (0 = unlimited). */
  userLimit?: number;
  /** Close the voice gateway with this code right after identify (e.g. 4017 DAVE required). */
  rejectVoiceWith?: number;
}

/** What was actually sent, for comparing a recording with what was played. */
export interface SpurtTruth {
  /** Wall clock (epoch ms, fractional) at which the spurt's first packet was sent. */
  startWallMs: number;
  /**
   * Wall clock of the spurt's first audio sample: a client sends a 20 ms frame once it has captured it, so the
   * sound began one frame before the first packet left (startWallMs − 20). This is the instant a recording's
   * onset is compared with.
   */
  onsetWallMs: number;
  /** Wall clock at which its last audio packet (before the silence frames) was sent. */
  endWallMs: number;
  /** Packets of this spurt put on the wire (audio + the 5 trailing silence frames; a duplicate counts once). */
  packetsSent: number;
  /** Dropped by the impairment model, or due while the recorder had no usable voice session (never sent). */
  packetsLost: number;
  ssrc: number;
}

export interface MemberTruth {
  userId: string;
  signal: Signal;
  ssrcs: number[];
  spurts: SpurtTruth[];
  packetsSent: number;
  packetsLost: number;
}

export interface GroundTruth {
  /** Wall clock at which the simulator considered the recorder's session started (scenario t=0). */
  sessionStartWallMs: number | null;
  members: MemberTruth[];
  /** Faults as they actually happened, with their wall-clock time and outcome (e.g. 'resumed'). */
  faults: { kind: Fault['kind']; wallMs: number; outcome?: string }[];
  hostileSent: number;
  rtcpSent: number;
}
