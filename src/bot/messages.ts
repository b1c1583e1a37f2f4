/**
 * What the bot says in a voice channel's chat and in its replies. Pure text functions: one place for the wording,
 * nothing here talks to Discord.
 */
import type { Manifest } from '../sinks/capture-layout.ts';

/** 1h 02m 03s / 2m 03s / 3s */
export function formatLength(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  if (h) return `${h}h ${String(m).padStart(2, '0')}m ${String(sec).padStart(2, '0')}s`;
  if (m) return `${m}m ${String(sec).padStart(2, '0')}s`;
  return `${sec}s`;
}

/** Discord mention of a channel. */
export const channelMention = (id: string): string => `<#${id}>`;

export function startedMessage(channelId: string, by: string): string {
  return `🔴 Recording ${channelMention(channelId)}, started by ${by}. Everything said here is recorded, one track per speaker.`;
}

function speakers(m: Manifest): string {
  return m.tracks.length ? m.tracks.map((t) => t.displayName).join(', ') : 'nobody spoke';
}

export function stoppedMessage(m: Manifest, dir: string, why: string): string {
  const notes = m.notes?.length ? `, ${m.notes.length} note${m.notes.length === 1 ? '' : 's'}` : '';
  return `⏹️ Recording of ${channelMention(m.channelId)} stopped (${why}): ${formatLength(m.durationMs)}, speakers: ${speakers(m)}${notes}. Files: ${dir}`;
}

export function recoveredMessage(m: Manifest, dir: string): string {
  return `♻️ The recorder restarted during a recording of ${channelMention(m.channelId)}; what was captured is finished: ${formatLength(m.durationMs)}, speakers: ${speakers(m)}. Files: ${dir}`;
}

/** Why a recording stopped, as people read it. */
export function stopReasonText(reason: string): string {
  switch (reason) {
    case 'requested':
      return 'stopped by command';
    case 'empty-channel':
      return 'the channel emptied';
    case 'disconnected':
      return 'the bot was disconnected';
    case 'duration':
      return 'time limit';
    case 'max-size':
      return 'size limit';
    case 'shutdown':
      return 'the recorder is shutting down';
    default:
      return 'an error';
  }
}
