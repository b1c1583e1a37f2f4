/**
 * The per-run certificate of the simulated voice gateway. @discordjs/voice connects to
 * `wss://${endpoint}?v=8` with no TLS options, so the recorder must trust this certificate: in-process via
 * `tls.setDefaultCACertificates()` (see trustSimulatorCertificate in index.ts), or in a child process via
 * `NODE_EXTRA_CA_CERTS=<caCertPath>` (read only at process start).
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import selfsigned from 'selfsigned';

export interface SimulatorCertificate {
  certPem: string;
  keyPem: string;
  /** The certificate written to a temp file (for NODE_EXTRA_CA_CERTS). */
  certPath: string;
  /** Removes the temp directory. */
  dispose(): Promise<void>;
}

/**
 * Generates a self-signed EC P-256 certificate for 127.0.0.1 (subjectAltName IP) and localhost.
 * It is its own CA (basicConstraints cA) so it can be handed to NODE_EXTRA_CA_CERTS as a trust anchor.
 */
export async function createCertificate(): Promise<SimulatorCertificate> {
  const notBeforeDate = new Date(Date.now() - 60_000);
  const notAfterDate = new Date(Date.now() + 7 * 24 * 3600_000);
  const pems = await selfsigned.generate([
      // A unique subject per run: a process that trusts several runs' certificates must not find two
      // trust anchors with the same name (OpenSSL looks issuers up by subject).
      { name: 'commonName', value: `dvrec simulator ${randomBytes(6).toString('hex')}` },
    ], {
    keyType: 'ec',
    curve: 'P-256',
    algorithm: 'sha256',
    notBeforeDate,
    notAfterDate,
    extensions: [
      { name: 'basicConstraints', cA: true },
      { name: 'keyUsage', digitalSignature: true, keyCertSign: true },
      { name: 'extKeyUsage', serverAuth: true },
      {
        name: 'subjectAltName',
        altNames: [
          { type: 7, ip: '127.0.0.1' },
          { type: 2, value: 'localhost' },
        ],
      },
    ],
  });
  const dir = await mkdtemp(join(tmpdir(), 'dvrec-sim-'));
  const certPath = join(dir, 'voice-gateway-ca.pem');
  await writeFile(certPath, pems.cert, { mode: 0o600 });
  return {
    certPem: pems.cert,
    keyPem: pems.private,
    certPath,
    dispose: () => rm(dir, { recursive: true, force: true }),
  };
}
