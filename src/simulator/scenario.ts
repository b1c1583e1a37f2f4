/**
 * What the local Discord plays: a scripted, seeded scenario. All times are milliseconds after the
 * recorder's voice connection became usable ("session start": op 4 sent and, with DAVE, the first
 * transition executed), so a test can reason in the recording's own timeline.
 */
import type { NonceNumbering } from './nonces.ts';
import type { VideoCodec } from './video.ts';

export type { NonceNumbering } from './nonces.ts';
export type { VideoCodec } from './video.ts';

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
  /** This member's network instead of the scenario's `impairments` (e.g. one member on a bursty link). */
  impairments?: Impairments;
  /**
   * Sends op 5 Speaking LATE on purpose: this long after the first packet of each of this member's SSRCs on a
   * voice session, instead of before it (the default). Exercises a recorder's hold-until-op-5 path.
   */
  op5DelayMs?: number;
  /**
   * A hostile DAVE sender: this member (a real MLS member of the group) replaces every `every`-th audio frame
   * it sends under DAVE with a malformed or wrongly keyed DAVE frame (see hostile-dave.ts for the kinds). The
   * datagrams themselves are genuine: transport-encrypted with the session key under fresh nonces.
   */
  hostileDave?: { every: number };
  /**
   * Video on the voice socket: camera and screen share, each on during the given spans (new video and RTX SSRCs
   * each time one turns on). The server announces them with op 12 (and the member's voice state gets self_video /
   * self_stream), then forwards video RTP (~30 fps camera, ~15 fps screen), RTX retransmissions and the video
   * streams' RTCP sender reports, all transport-encrypted and, with DAVE, DAVE-encrypted as video frames
   * (video.ts). Codecs: camera VP8, screen H264 unless set.
   */
  video?: { camera?: Spurt[]; screen?: Spurt[]; cameraCodec?: VideoCodec; screenCodec?: VideoCodec };
  /**
   * On a stage channel (Scenario.channelType 13): an audience member, suppressed (voice state `suppress: true`), as
   * Discord puts everyone who is not a speaker. Discord forwards no audio from the audience, so such a member must
   * have no spurts. Off (a speaker) by default.
   */
  audience?: boolean;
  /** Role ids (of the guild's Scenario.roles) this member has; its permissions are @everyone's plus these. */
  roles?: string[];
  /**
   * Not in the call when the simulator starts, and never joins on its own: a test makes it join and leave with
   * `sim.guild(id).join(userId)` / `.leave(userId)` (and so does `joinAtMs` etc. when also given).
   */
  absent?: boolean;
}

/** A guild role (besides @everyone, whose id is the guild id). `permissions`: Discord's decimal bitfield string. */
export interface SimRole {
  id: string;
  name: string;
  permissions: string;
}

/**
 * A member's network, applied per packet by a seeded model (impairments.ts). With burst probability b, burst
 * length L and independent loss p, the expected loss rate is (b·L + (1 − b)·p) / (1 + b·(L − 1)).
 */
export interface Impairments {
  /** Independent loss probability per packet (outside bursts). */
  loss?: number;
  /** Probability that a packet is held back by 1..3 packet intervals (+1 ms), so it arrives after the next 1..3. */
  reorder?: number;
  /** Probability that a packet is sent twice: the SAME datagram bytes, the copy 0..jitterMs after the first. */
  duplicate?: number;
  /** Uniform extra delay 0..jitterMs per packet (and per duplicate copy). */
  jitterMs?: number;
  /**
   * Gilbert-style burst loss: on a packet outside a burst, a burst starts with `probability` and drops that
   * packet and the next `length − 1`.
   */
  burst?: { probability: number; length: number };
}

/**
 * `voice-close` behaves as Discord documents each code (topics/opcodes-and-status-codes, voice close event codes):
 * 4015 and codes below 4000 keep the session resumable (op 7 → op 9); 4014 disconnects the bot; every other code
 * ends the voice session on the server (a resume is refused with 4006; a new identify works), and
 *   - 4021 (rate limited) also refuses the bot's identifies with 4021 for `rateLimitMs` (default 30 s);
 *   - 4022 (call terminated) comes with `then`: 'channel-deleted' (default: CHANNEL_DELETE, everyone's voice state
 *     leaves, joins to it are refused), 'server-changed' (the call moves to a new voice server, which the main
 *     gateway names in a VOICE_SERVER_UPDATE 100 ms later, and in its answer to any op 4 join) or 'ignored' (the
 *     channel stays, but the main gateway answers no op 4 join for it any more: "should not reconnect").
 */
export type Fault =
  | { atMs: number; kind: 'voice-close'; code: number; then?: 'channel-deleted' | 'server-changed' | 'ignored'; rateLimitMs?: number }
  | { atMs: number; kind: 'voice-server-move' } // new VOICE_SERVER_UPDATE with a new endpoint
  | { atMs: number; kind: 'gateway-reconnect' } // main gateway op 7 Reconnect
  | { atMs: number; kind: 'disconnect-bot' } // voice close 4014 + voice state with channel_id null
  | { atMs: number; kind: 'move-bot'; channelId: string } // a moderator drags the bot to another voice channel
  | { atMs: number; kind: 'hostile'; count: number } // garbage, truncated RTP, bad tags, unknown SSRCs
  | { atMs: number; kind: 'rtcp'; count: number } // RTCP SR/RR packets
  /**
   * The next commit announcement (op 29) for the recorder after atMs never reaches it (with `execute: false` the
   * transition's op 22 neither; default true): the members move to the new epoch, the recorder stays behind with
   * nothing telling it so. Needs a group change after atMs (a member joining or leaving) to have an effect.
   */
  | { atMs: number; kind: 'dave-missed-commit'; execute?: boolean }
  /** The recorder gets the next commit (op 29) after atMs, but never its op 22. */
  | { atMs: number; kind: 'dave-missed-execute' }
  /** The next welcome (op 30) for the recorder after atMs arrives corrupted: its MLS library rejects it. */
  | { atMs: number; kind: 'dave-bad-welcome' };

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
  /** The recorded channel's type: 2 (voice, default) or 13 (stage: the bot joins as suppressed audience). */
  channelType?: number;
  /**
   * On a stage channel the voice server answers op 4 with `dave_protocol_version: 0` (Discord exempts stages from
   * DAVE) unless this is set: then a stage uses DAVE like a voice channel (when `dave` is on).
   */
  stageDave?: boolean;
  /**
   * When the last member leaves the channel, the voice server closes the recorder's session with this code (it is
   * gone on the server: no resume). Discord has been seen to send 4006 then; undocumented, so off by default.
   */
  emptyChannelCloseCode?: number;
  /**
   * How the server numbers the transport nonce of the datagrams it forwards (undocumented by Discord; nonces.ts):
   * one counter per connection (default), or one per forwarded stream starting at random values, at 0, or at
   * 0x80000000.
   */
  nonces?: NonceNumbering;
  /**
   * RTCP sender reports (PT 200) the server forwards for every active sender (one that sent audio within the last
   * interval), about once per interval (± 10 %): sender SSRC = the member's SSRC, NTP time and RTP timestamp of the
   * same instant of its stream, its packet and octet counts. `true` = every 1000 ms, as Discord does since early 2026.
   */
  senderReports?: boolean | { intervalMs: number };
  /**
   * With DAVE: warn (simulator 'warning' event) when the recorder is attached to a voice session but not in the
   * MLS group for this long (it never sent a usable key package, or was removed after op 31). Default 5000.
   */
  daveJoinTimeoutMs?: number;
  /**
   * With DAVE: the transitions that welcome the recorder into the group carry transition id 0 ("(re)initialization",
   * executed at once, without op 23 / op 22) instead of 1..65535. Discord does not document which id such a
   * transition gets; @discordjs/voice 0.19.2 is left with lastTransitionId 0 after one, and then never recovers
   * from decryption failures by itself (openclaw/openclaw#81518). Default false.
   */
  daveWelcomeIdZero?: boolean;
  /** Roles of the guild besides @everyone (members get them through SimMember.roles). */
  roles?: SimRole[];
  /**
   * The bot may not set the voice channel status (no Set Voice Channel Status permission): PUT
   * /channels/{id}/voice-status answers 403 Missing Permissions, as Discord does.
   */
  denyVoiceStatus?: boolean;
  /** The guild's boost tier (0–3): its upload limit (10 MiB; 50 / 100 MiB for tiers 2 / 3). */
  premiumTier?: number;
  /** The voice channel's status when the simulator starts (what people had set). */
  voiceStatus?: string;
  /** The guild owner (all permissions). Default: the first member. */
  ownerId?: string;
  /**
   * More voice channels of this guild, each with its own call (members, speaking schedule, DAVE group, ground truth)
   * that plays once the bot joins that channel (its times count from then). The top-level channel and members are
   * the guild's first call. `sim.guild(id).call(channelId)` reaches each.
   */
  calls?: SimCall[];
  /**
   * More guilds in the same simulated Discord, each with its own channels, members, call and speaking schedule
   * (a GuildScenario is a Scenario without the bot's identity, which all guilds share). The top-level fields are
   * the first guild; `sim.guild(guildId)` reaches any of them.
   */
  guilds?: GuildScenario[];
  /** Shard count GET /gateway/bot recommends (default 1). Guild g belongs to shard (g >> 22) % shard_count. */
  shards?: number;
}

/** A voice channel of a guild with its own call (Scenario.calls). */
export interface SimCall {
  channelId: string;
  channelName?: string;
  members: SimMember[];
  userLimit?: number;
  /** The channel's status when the simulator starts. */
  voiceStatus?: string;
  /** Default: the guild's seed + 1000 × (position + 1). */
  seed?: number;
}

/** One more guild of a multi-guild scenario (seed: default the scenario's seed + its position). */
export type GuildScenario = Omit<Scenario, 'seed' | 'botUserId' | 'token' | 'guilds' | 'shards'> & { seed?: number };

/**
 * What was actually sent, for comparing a recording with what was played.
 *
 * Times are the member's: the instant each packet was due on the simulator's 20 ms clock (when a real client
 * would have sent it). What happens afterwards (jitter, reordering, the op 5 lead hold, and this process running
 * a tick late) delays arrival but does not move these times, just as a recorder sees it: the least-delayed
 * packets tell when sound began.
 * Counts are settled when a packet's datagrams actually leave (or can no longer leave) the simulator: a packet
 * whose delayed copies find no usable voice session any more counts as lost, not sent.
 */
export interface SpurtTruth {
  /** Wall clock (epoch ms, fractional) at which the spurt's first packet was due (sent by the member). */
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
  /** Dropped by the impairment model, or no usable voice session when due or when a delayed copy was due. */
  packetsLost: number;
  /**
   * Which of the spurt's packets were lost, by their position in it (0 = its first packet, one every 20 ms from
   * startWallMs), ascending: where a recording may lack audio, and how long each run of losses is.
   */
  lostIndices: number[];
  /** Of packetsSent, the audio packets (not the trailing silence frames). */
  audioPacketsSent: number;
  ssrc: number;
  /** RTP sequence number of the spurt's first packet (packet n has firstSequence + n, mod 2^16). */
  firstSequence: number;
}

/** What the member's network model did (impairments.ts), for checking the impairments against the wire. */
export interface NetworkTruth {
  /** Bursts started (each drops up to `burst.length` packets). */
  bursts: number;
  /** Packets dropped inside bursts. */
  burstLost: number;
  /** Packets dropped by the independent loss. */
  randomLost: number;
  /** Packets held back past later ones. */
  reordered: number;
  /** Extra copies that reached the wire (byte-identical to the first). */
  duplicatesSent: number;
}

export interface MemberTruth {
  userId: string;
  signal: Signal;
  ssrcs: number[];
  spurts: SpurtTruth[];
  packetsSent: number;
  packetsLost: number;
  /** Of packetsSent, the audio packets (not silence frames). */
  audioPacketsSent: number;
  /** Audio packets sent with a deliberately bad DAVE frame (SimMember.hostileDave), by kind. */
  daveForged: Record<string, number>;
  network: NetworkTruth;
  /** Video and RTX SSRCs this member used (SimMember.video). */
  videoSsrcs: number[];
}

/** What the simulator forwarded besides audio (each counted when it reached the wire). */
export interface MediaTruth {
  /** Video RTP datagrams (RTX included). */
  videoRtp: number;
  /** Of videoRtp, RTX retransmissions. */
  videoRtx: number;
  /** RTCP sender reports of video streams. */
  videoRtcp: number;
  /** RTCP sender reports of members' audio streams (Scenario.senderReports). */
  senderReports: number;
}

export interface GroundTruth {
  /** Wall clock at which the simulator considered the recorder's session started (scenario t=0). */
  sessionStartWallMs: number | null;
  members: MemberTruth[];
  /** Faults as they actually happened, with their wall-clock time and outcome (e.g. 'resumed'). */
  faults: { kind: Fault['kind']; wallMs: number; outcome?: string }[];
  hostileSent: number;
  /** Every RTCP datagram sent: the 'rtcp' faults' reports, audio sender reports and video RTCP. */
  rtcpSent: number;
  media: MediaTruth;
}
