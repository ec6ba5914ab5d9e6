// A relay client written from docs/PROTOCOL.md alone, in another language
// and on another TLS stack (Node's OpenSSL), used by the Go test
// cmd/relayd TestNodeClientFromProtocolDoc. Quotes are made and checked by
// the enclavectl binary the test builds (`sim quote`, `quote verify`).
//
// usage: node relay-client.js HOST PORT SIM_DIR ENCLAVECTL
// prints one JSON object describing what happened.
'use strict';
const tls = require('tls');
const crypto = require('crypto');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { execFileSync } = require('child_process');

const [host, port, simDir, enclavectl] = process.argv.slice(2);
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
    sock.end();
    done();
  } catch (e) {
    done(e);
  }
});
