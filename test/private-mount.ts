/**
 * Mounts for tests that leave the machine's mounts alone: a child process enters a mount namespace of its own
 * (`unshare -m` where this process may mount, i.e. root with CAP_SYS_ADMIN; else `unshare -rm`, inside an
 * unprivileged user namespace), mounts there and stays; this process, and the processes it starts, reach the mount
 * through /proc/<child>/root. The mount disappears with the child, which exits when its stdin (this process) goes
 * away. Null when neither way works (use needs() from strict.ts: on CI that fails the test instead of skipping it).
 */
import { spawn } from 'node:child_process';

export interface PrivateMount {
  /** The mounted directory as this process sees it (through /proc/<child>/root). */
  path: string;
  /** Which unshare worked. */
  how: string;
  release: () => void;
}

async function mountInNamespace(script: string, args: string[], target: string): Promise<PrivateMount | null> {
  for (const flags of [['-m'], ['-r', '-m']]) {
    const child = spawn('unshare', [...flags, 'sh', '-c', `${script} && echo mounted && exec cat >/dev/null`, 'sh', ...args], { stdio: ['pipe', 'pipe', 'ignore'] });
    const mounted = await new Promise<boolean>((resolve) => {
      child.stdout.on('data', (d: Buffer) => d.toString().includes('mounted') && resolve(true));
      child.on('error', () => resolve(false));
      child.on('exit', () => resolve(false));
    });
    if (mounted) return { path: `/proc/${child.pid}/root${target}`, how: `unshare ${flags.join(' ')}`, release: () => child.kill('SIGKILL') };
    child.kill('SIGKILL');
  }
  return null;
}

/** A tmpfs of `sizeKiB` on the (existing, empty) directory `mnt`: a disk that fills up. */
export function smallFilesystem(mnt: string, sizeKiB: number): Promise<PrivateMount | null> {
  return mountInNamespace('mount -t tmpfs -o "size=${1}k,mode=0700" tmpfs "$2"', [String(sizeKiB), mnt], mnt);
}

/**
 * `dir` mounted read-only on itself: a directory that even root cannot write to (EROFS), the way an output directory
 * on a read-only filesystem is. Permission bits cannot make one for root, which CAP_DAC_OVERRIDE lets write anywhere.
 */
export function readOnlyView(dir: string): Promise<PrivateMount | null> {
  return mountInNamespace('mount --bind "$1" "$1" && mount -o remount,bind,ro "$1"', [dir], dir);
}
