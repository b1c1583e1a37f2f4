/** Worker thread entry: runs one {@link Job} from workerData, posts progress, then the result or the error. */
import { parentPort, workerData } from 'node:worker_threads';
import { runJob, type Job } from './jobs.ts';
import { DvrecError } from '../../errors.ts';

const port = parentPort!;
runJob(workerData as Job, (done) => port.postMessage({ type: 'progress', done })).then(
  (result) => port.postMessage({ type: 'done', result }),
  (e: unknown) =>
    port.postMessage({
      type: 'error',
      message: e instanceof Error ? e.message : String(e),
      kind: e instanceof DvrecError ? e.kind : undefined,
    }),
);
