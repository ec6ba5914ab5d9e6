// A relay client written from docs/PROTOCOL.md alone, in another language
// and on another TLS stack (Node's OpenSSL), used by the Go test
// cmd/relayd TestNodeClientFromProtocolDoc. Quotes are made and checked by
// the enclavectl binary the test builds (`sim quote`, `quote verify`).
//
// usage: node relay-client.js HOST PORT SIM_DIR ENCLAVECTL [ext]
// prints one JSON object describing what happened. With "ext" it goes on,
// after the seed protocol's steps, with the extension of docs/PROTOCOL.md
// section 8 (HELLO, SUBSCRIBE, SEND_ID, DELIVER, ACK), reported under "ext";
// without it, it is a client of the seed protocol only.
'use strict';
const tls = require('tls');
const crypto = require('crypto');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { execFileSync } = require('child_process');

const [host, port, simDir, enclavectl, mode] = process.argv.slice(2);
const out = { steps: [] };
const done = (err) => {
  if (err) out.error = String(err && err.message || err);
  process.stdout.write(JSON.stringify(out));
  process.exit(0);
};

// Byte reader over the socket: read(n) resolves with exactly n bytes.
let buf = Buffer.alloc(0);
let waiting = null;
function pump() {
  if (waiting && buf.length >= waiting.n) {
    const b = buf.subarray(0, waiting.n);
    buf = buf.subarray(waiting.n);
    const w = waiting;
    waiting = null;
    w.resolve(b);
  }
}
function read(n) {
  return new Promise((resolve, reject) => {
    waiting = { n, resolve, reject };
    pump();
  });
}

// Frames: type u8 ‖ length u32 big-endian ‖ payload.
function frame(type, payload) {
  const h = Buffer.alloc(5);
  h[0] = type;
  h.writeUInt32BE(payload.length, 1);
  return Buffer.concat([h, payload]);
}
function addressed(id, data) {
  const idb = Buffer.from(id, 'utf8');
  const l = Buffer.alloc(2);
  l.writeUInt16BE(idb.length, 0);
  return Buffer.concat([l, idb, Buffer.from(data)]);
}
async function readFrame() {
  const h = await read(5);
  const n = h.readUInt32BE(1);
  return { type: h[0], payload: n ? await read(n) : Buffer.alloc(0) };
}

// Section 8: DELIVER frames (0x98) come between answers; every other frame
// answers the oldest request.
async function extension() {
  const ext = { steps: [], deliveries: [] };
  out.ext = ext;
  const answer = async (name, type, payload) => {
    sock.write(frame(type, payload));
    for (;;) {
      const f = await readFrame();
      if (f.type === 0x98) { ext.deliveries.push(parseDeliver(f.payload)); continue; }
      ext.steps.push({ name, type: f.type, payload: f.payload.toString('hex') });
      return f;
    }
  };
  const u32 = (n) => { const b = Buffer.alloc(4); b.writeUInt32BE(n, 0); return b; };
  const hello = await answer('hello', 0x10, Buffer.concat([Buffer.from('SEXT'), Buffer.from([1]), u32(3)]));
  if (hello.type === 0x90) ext.features = hello.payload.readUInt32BE(5);
  await answer('subscribe', 0x12, u32(4));
  const sendID = (id, to, data) => Buffer.concat([Buffer.from([Buffer.byteLength(id)]), Buffer.from(id), addressed(to, data)]);
  await answer('send_id', 0x15, sendID('n1', 'node-client', 'pushed to node'));
  await answer('send_id again', 0x15, sendID('n1', 'node-client', 'pushed to node'));
  await answer('ping', 0x17, Buffer.alloc(0));
  if (ext.deliveries.length > 0) {
    const ack = Buffer.alloc(3 + 8);
    ack[0] = 0;
    ack.writeUInt16BE(1, 1);
    ack.writeBigUInt64BE(BigInt(ext.deliveries[0].id), 3);
    await answer('ack', 0x14, ack);
  }
  await answer('fetch while subscribed', 0x11, Buffer.from([0, 1, 0, 0, 0, 0]));
}
function parseDeliver(p) {
  const id = p.readBigUInt64BE(0).toString();
  const flags = p[8];
  const m = p[9];
  const msgid = p.subarray(10, 10 + m).toString();
  const n = p.readUInt16BE(10 + m);
  const from = p.subarray(12 + m, 12 + m + n).toString();
  const data = p.subarray(12 + m + n).toString();
  return { id, flags, msgid, from, data };
}

const sock = tls.connect({ host, port: Number(port), rejectUnauthorized: false, minVersion: 'TLSv1.2' });
sock.on('data', (d) => { buf = Buffer.concat([buf, d]); pump(); });
sock.on('error', done);
sock.on('secureConnect', async () => {
  try {
    out.tls_version = sock.getProtocol();
    // Session digest = SHA-256(exporter(label, no context, 32)).
    const ekm = sock.exportKeyingMaterial(32, 'EXPERIMENTAL-shared-enclave-attest');
    const digest = crypto.createHash('sha256').update(ekm).digest();

    // Client quote over digest ‖ 32 zeros.
    const rd = Buffer.concat([digest, Buffer.alloc(32)]);
    const quote = Buffer.from(execFileSync(enclavectl, ['sim', 'quote', '--sim-dir', simDir,
      '--report-data', rd.toString('hex'), '--mrenclave', 'aa'.repeat(32)]).toString().trim(), 'hex');
    const len = Buffer.alloc(4);
    len.writeUInt32BE(quote.length, 0);
    sock.write(Buffer.concat([len, quote]));

    // The server's answer: an ERROR frame (first byte 0xFF) or length ‖ quote.
    const h = await read(4);
    if (h[0] === 0xff) {
      const rest = await read(1);
      const n = Buffer.concat([h.subarray(1), rest]).readUInt32BE(0);
      throw new Error('refused: ' + (await read(n)).toString());
    }
    const serverQuote = await read(h.readUInt32BE(0));
    const qfile = path.join(os.tmpdir(), 'server-quote-' + process.pid + '.bin');
    fs.writeFileSync(qfile, serverQuote);
    const report = JSON.parse(execFileSync(enclavectl, ['quote', 'verify', '--quote', qfile,
      '--collateral', path.join(simDir, 'collateral'), '--root', path.join(simDir, 'root_ca.pem')]).toString());
    fs.unlinkSync(qfile);
    const certHash = crypto.createHash('sha256').update(sock.getPeerCertificate(true).raw).digest();
    const want = Buffer.concat([certHash, digest]).toString('hex');
    out.server_genuine = report.genuine === true;
    out.server_binding_ok = report.report_data === want;
    if (!out.server_genuine || !out.server_binding_ok) throw new Error('server attestation does not check out');

    const ask = async (name, type, payload) => {
      sock.write(frame(type, payload));
      const f = await readFrame();
      out.steps.push({ name, type: f.type, payload: f.payload.toString('utf8') });
      return f;
    };
    await ask('register', 0x01, Buffer.from('node-client'));
    await ask('send to self', 0x02, addressed('node-client', 'hello from node'));
    const p = await ask('poll', 0x03, Buffer.alloc(0));
    if (p.type === 0x83) {
      const n = p.payload.readUInt16BE(0);
      out.polled_from = p.payload.subarray(2, 2 + n).toString();
      out.polled_data = p.payload.subarray(2 + n).toString();
    }
    await ask('poll empty', 0x03, Buffer.alloc(0));
    await ask('send to unknown', 0x02, addressed('nobody', 'x'));
    await ask('unknown type', 0x04, Buffer.alloc(0));
    await ask('register empty', 0x01, Buffer.alloc(0));
    if (mode === 'ext') await extension();
    sock.end();
    done();
  } catch (e) {
    done(e);
  }
});
