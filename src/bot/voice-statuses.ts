/**
 * The voice channel statuses people set (so the bot can put back what was there before its "🔴 Recording").
 * discord.js 14 does not keep them, so they are read from the gateway's own payloads: the `status` of voice
 * channels in GUILD_CREATE, and VOICE_CHANNEL_STATUS_UPDATE { id, guild_id, status }.
 */
import { Events, type Client } from 'discord.js';

export class VoiceStatuses {
  readonly #byChannel = new Map<string, string>();

  constructor(client: Client) {
    client.on(Events.Raw, (packet: { t?: string; d?: any }) => {
      if (packet.t === 'GUILD_CREATE') {
        for (const ch of packet.d?.channels ?? []) this.#set(String(ch.id), ch.status);
      } else if (packet.t === 'VOICE_CHANNEL_STATUS_UPDATE' || packet.t === 'CHANNEL_UPDATE') {
        if (packet.t === 'CHANNEL_UPDATE' && !('status' in (packet.d ?? {}))) return;
        this.#set(String(packet.d?.id), packet.d?.status);
      }
    });
  }

  /** The channel's status now (null: none or unknown). */
  get(channelId: string): string | null {
    return this.#byChannel.get(channelId) ?? null;
  }

  #set(channelId: string, status: unknown): void {
    if (typeof status === 'string' && status !== '') this.#byChannel.set(channelId, status);
    else this.#byChannel.delete(channelId);
  }
}
