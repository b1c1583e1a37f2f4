/**
 * The few MLS (RFC 9420) wire structures Discord's voice gateway produces or inspects as the DAVE
 * delivery service and external sender. Hand-written because no npm library exposes "sign an
 * external proposal as a non-member": @snazzah/davey (openmls) only plays group members, and the
 * voice gateway side of DAVE is closed source. Everything here follows:
 *   - RFC 9420 §2.1.2 (variable-length vectors), §6 (MLSMessage, FramedContent, FramedContentTBS),
 *     §5.1.2 (SignWithLabel), §12.1.1/§12.1.3 (Add / Remove proposals), §12.1.8.1 (ExternalSender);
 *   - Discord's DAVE protocol description (github.com/discord/dave-protocol, protocol.md, sections
 *     "External Sender", "Proposal Handling", "Key Packages: Validation" and "Voice Gateway Opcodes").
 */
import { generateKeyPairSync, sign, type KeyObject } from 'node:crypto';

/** MLS `ProtocolVersion mls10`. */
export const MLS_VERSION_10 = 1;
/** MLS `WireFormat` values (RFC 9420 §6). */
export const WIRE_FORMAT_PUBLIC_MESSAGE = 1;
/** MLS `SenderType` values. */
export const SENDER_MEMBER = 1;
export const SENDER_EXTERNAL = 2;
/** MLS `ContentType` values. */
export const CONTENT_PROPOSAL = 2;
export const CONTENT_COMMIT = 3;
/** MLS `ProposalType` values. */
export const PROPOSAL_ADD = 1;
export const PROPOSAL_REMOVE = 3;
/** MLS `CredentialType basic`; the only credential DAVE v1 allows. */
export const CREDENTIAL_BASIC = 1;
/** DAVE v1 ciphersuite: MLS_128_DHKEMP256_AES128GCM_SHA256_P256. */
export const CIPHERSUITE_P256 = 2;

/** Encodes an MLS variable-length integer (RFC 9420 §2.1.2): 1, 2 or 4 bytes, top two bits = length. */
export function encodeVarint(n: number): Buffer {
  if (!Number.isInteger(n) || n < 0 || n >= 2 ** 30) throw new RangeError(`MLS varint out of range: ${n}`);
  if (n < 0x40) return Buffer.from([n]);
  if (n < 0x4000) return Buffer.from([0x40 | (n >> 8), n & 0xff]);
  const b = Buffer.alloc(4);
  b.writeUInt32BE((0x80000000 | n) >>> 0);
  return b;
}

/** `opaque x<V>`: a varint length followed by the bytes. */
export function vec(...parts: Buffer[]): Buffer {
  const body = Buffer.concat(parts);
  return Buffer.concat([encodeVarint(body.length), body]);
}

function u8(n: number): Buffer {
  return Buffer.from([n]);
}
function u16(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(n);
  return b;
}
function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return b;
}
function u64(n: bigint): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(n);
  return b;
}

/** A bounds-checked reader for TLS-presentation-language structures. */
export class MlsReader {
  #buf: Buffer;
  offset = 0;
  constructor(buf: Buffer) {
    this.#buf = buf;
  }
  get remaining(): number {
    return this.#buf.length - this.offset;
  }
  #need(n: number): void {
    if (this.offset + n > this.#buf.length) throw new RangeError('truncated MLS structure');
  }
  u8(): number {
    this.#need(1);
    return this.#buf[this.offset++]!;
  }
  u16(): number {
    this.#need(2);
    const v = this.#buf.readUInt16BE(this.offset);
    this.offset += 2;
    return v;
  }
  u32(): number {
    this.#need(4);
    const v = this.#buf.readUInt32BE(this.offset);
    this.offset += 4;
    return v;
  }
  u64(): bigint {
    this.#need(8);
    const v = this.#buf.readBigUInt64BE(this.offset);
    this.offset += 8;
    return v;
  }
  varint(): number {
    const first = this.u8();
    const prefix = first >> 6;
    if (prefix === 0) return first & 0x3f;
    if (prefix === 1) return ((first & 0x3f) << 8) | this.u8();
    if (prefix === 2) {
      this.#need(3);
      const v = ((first & 0x3f) * 2 ** 24) + this.#buf.readUIntBE(this.offset, 3);
      this.offset += 3;
      return v;
    }
    throw new RangeError('invalid MLS varint prefix');
  }
  bytes(n: number): Buffer {
    this.#need(n);
    const v = this.#buf.subarray(this.offset, this.offset + n);
    this.offset += n;
    return v;
  }
  /** `opaque x<V>` */
  vec(): Buffer {
    return this.bytes(this.varint());
  }
}

/** MLS group id of a DAVE group: the channel snowflake as a big-endian u64 (davey/libdave common_init). */
export function groupIdFor(channelId: string): Buffer {
  return u64(BigInt(channelId));
}

/** A basic credential's identity: the user snowflake as a big-endian u64 (protocol.md "Validation"). */
export function identityFor(userId: string): Buffer {
  return u64(BigInt(userId));
}

/**
 * The voice gateway's external sender: a P-256 signing key and a basic credential.
 * (protocol.md "External Sender": sent to every member via op 25 before any group is negotiated.)
 */
export class ExternalSenderKey {
  readonly #privateKey: KeyObject;
  /** Uncompressed SEC1 point (0x04 ‖ X ‖ Y), the form openmls stores as SignaturePublicKey for P-256. */
  readonly publicKey: Buffer;
  /** The credential identity. Discord's own external sender uses a short opaque identity. */
  readonly identity: Buffer;

  constructor(identity: Buffer = Buffer.from([0])) {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    this.#privateKey = privateKey;
    const jwk = publicKey.export({ format: 'jwk' });
    this.publicKey = Buffer.concat([
      Buffer.from([4]),
      Buffer.from(jwk.x!, 'base64url'),
      Buffer.from(jwk.y!, 'base64url'),
    ]);
    this.identity = identity;
  }

  /**
   * The op 25 payload (protocol.md "dave_mls_external_sender_package (25)"):
   * `ExternalSender { SignaturePublicKey signature_key<V>; Credential { u16 credential_type = 1; opaque identity<V> } }`.
   */
  packageBytes(): Buffer {
    return Buffer.concat([vec(this.publicKey), u16(CREDENTIAL_BASIC), vec(this.identity)]);
  }

  /**
   * RFC 9420 §5.1.2 SignWithLabel(key, "FramedContentTBS", tbs): ECDSA-P256-SHA256 (DER, as openmls
   * expects for P-256) over `SignContent { opaque label<V> = "MLS 1.0 FramedContentTBS"; opaque content<V> }`.
   */
  signWithLabel(label: string, content: Buffer): Buffer {
    const signContent = Buffer.concat([vec(Buffer.from(`MLS 1.0 ${label}`, 'ascii')), vec(content)]);
    return sign('sha256', signContent, this.#privateKey);
  }

  /**
   * An MLSMessage carrying a PublicMessage with one proposal sent by this external sender
   * (sender_type external, sender_index 0: the only entry in the group's external_senders).
   * External senders have no membership key, so there is no membership_tag, and the TBS has no
   * group context (RFC 9420 §6.1, FramedContentTBS select on sender_type).
   */
  proposalMessage(channelId: string, epoch: bigint, proposal: Buffer): Buffer {
    const framedContent = Buffer.concat([
      vec(groupIdFor(channelId)),
      u64(epoch),
      u8(SENDER_EXTERNAL),
      u32(0),
      vec(), // authenticated_data
      u8(CONTENT_PROPOSAL),
      proposal,
    ]);
    const header = Buffer.concat([u16(MLS_VERSION_10), u16(WIRE_FORMAT_PUBLIC_MESSAGE)]);
    const tbs = Buffer.concat([header, framedContent]);
    const signature = this.signWithLabel('FramedContentTBS', tbs);
    // PublicMessage = FramedContent ‖ FramedContentAuthData { signature<V> } (no confirmation tag: not a commit).
    return Buffer.concat([header, framedContent, vec(signature)]);
  }
}

/** `Proposal { u16 proposal_type = add; KeyPackage key_package }` (RFC 9420 §12.1.1). */
export function addProposal(keyPackage: Buffer): Buffer {
  return Buffer.concat([u16(PROPOSAL_ADD), keyPackage]);
}

/** `Proposal { u16 proposal_type = remove; u32 removed (leaf index) }` (RFC 9420 §12.1.3). */
export function removeProposal(leafIndex: number): Buffer {
  return Buffer.concat([u16(PROPOSAL_REMOVE), u32(leafIndex)]);
}

/** The op 27 payload (protocol.md "dave_mls_proposals (27)"): `u8 operation_type ‖ MLSMessage proposal_messages<V>`. */
export function proposalsPayload(messages: Buffer[], operation: 0 | 1 = 0): Buffer {
  return Buffer.concat([u8(operation), vec(...messages)]);
}

/** `[u16 transition_id][body]`: the op 29 (announce commit) and op 30 (welcome) payloads. */
export function withTransitionId(transitionId: number, body: Buffer): Buffer {
  return Buffer.concat([u16(transitionId), body]);
}

/** What the voice gateway validates in a member's op 26 key package (protocol.md "Key Packages: Validation"). */
export interface KeyPackageSummary {
  version: number;
  cipherSuite: number;
  credentialType: number;
  /** The snowflake in the basic credential (big-endian u64). */
  userId: string;
  signatureKey: Buffer;
}

/**
 * Reads the leading fields of a KeyPackage (RFC 9420 §10): version, cipher_suite, init_key<V>, then the
 * LeafNode's encryption_key<V>, signature_key<V> and credential. davey sends the bare KeyPackage in op 26.
 */
export function parseKeyPackage(keyPackage: Buffer): KeyPackageSummary {
  const r = new MlsReader(keyPackage);
  const version = r.u16();
  const cipherSuite = r.u16();
  r.vec(); // init_key
  r.vec(); // leaf_node.encryption_key
  const signatureKey = r.vec();
  const credentialType = r.u16();
  if (credentialType !== CREDENTIAL_BASIC) throw new Error(`key package credential type ${credentialType} is not basic`);
  const identity = r.vec();
  if (identity.length !== 8) throw new Error(`key package identity is ${identity.length} bytes, expected a u64 snowflake`);
  return { version, cipherSuite, credentialType, userId: identity.readBigUInt64BE().toString(), signatureKey };
}

/** The framing header of a PublicMessage, which the voice gateway inspects in op 28 (protocol.md "Commit Handling"). */
export interface PublicMessageHeader {
  version: number;
  wireFormat: number;
  groupId: Buffer;
  epoch: bigint;
  senderType: number;
  senderIndex: number;
  contentType: number;
}

export function parsePublicMessageHeader(message: Buffer): PublicMessageHeader {
  const r = new MlsReader(message);
  const version = r.u16();
  const wireFormat = r.u16();
  if (wireFormat !== WIRE_FORMAT_PUBLIC_MESSAGE) throw new Error(`MLS wire format ${wireFormat} is not a public message`);
  const groupId = r.vec();
  const epoch = r.u64();
  const senderType = r.u8();
  const senderIndex = senderType === SENDER_MEMBER || senderType === SENDER_EXTERNAL ? r.u32() : 0;
  r.vec(); // authenticated_data
  const contentType = r.u8();
  return { version, wireFormat, groupId, epoch, senderType, senderIndex, contentType };
}
