/**
 * Follows a VoiceConnection's networking across everything that replaces it: the first connect, 4015 resume
 * (same Networking, new websocket), a voice server move or a rejoin (a new Networking with a new websocket,
 * UDP socket, key and DAVE session), a gateway reconnect. Calls back with every networking state, so the
 * UDP tap and the voice session can re-attach to whatever the current socket/websocket is.
 *
 * Listeners are added after @discordjs/voice's own (it subscribes when it creates the Networking), so when
 * we are called, its `updateReceiveBindings` has already run for the same state change.
 */
import type { Networking, NetworkingState, VoiceConnection, VoiceConnectionState } from '@discordjs/voice';

export type NetworkingListener = (state: NetworkingState) => void;

/** Starts following; returns a function that stops. */
export function watchNetworking(connection: VoiceConnection, listener: NetworkingListener): () => void {
  let current: Networking | undefined;
  const onNetState = (_old: NetworkingState, next: NetworkingState): void => listener(next);
  const follow = (state: VoiceConnectionState): void => {
    const networking = Reflect.get(state, 'networking') as Networking | undefined;
    if (networking === current) return;
    current?.off('stateChange', onNetState);
    current = networking;
    if (networking) {
      networking.on('stateChange', onNetState);
      listener(networking.state);
    }
  };
  const onConnState = (_old: VoiceConnectionState, next: VoiceConnectionState): void => follow(next);
  connection.on('stateChange', onConnState);
  follow(connection.state);
  return () => {
    connection.off('stateChange', onConnState);
    current?.off('stateChange', onNetState);
    current = undefined;
  };
}
