// node-vault, the npm Vault client (https://www.npmjs.com/package/node-vault),
// driving kmsd as a Node.js application would; run by the Go test
// TestNodeVault in cmd/kmsd, which starts kmsd in simulation and checks
// this script's output. Nothing here is specific to kmsd: the same calls
// work against Vault.
//
// usage: VAULT_ADDR=https://… VAULT_TOKEN=… node client.js CA.pem
// prints one JSON object: the results of each step, or "error".
'use strict';
const fs = require('fs');

const ca = fs.readFileSync(process.argv[2]);
const vault = require('node-vault')({ apiVersion: 'v1', requestOptions: { ca } });

const out = {};
const b64 = (s) => Buffer.from(s).toString('base64');
const unb64 = (s) => Buffer.from(s, 'base64').toString();

async function main() {
  out.health = await vault.health();
  out.status = await vault.status();

  await vault.write('transit/keys/node', { type: 'aes256-gcm96' });
  out.key = (await vault.transitReadKey({ name: 'node' })).data;
  out.list = (await vault.transitListKeys()).data.keys;

  const enc = await vault.encryptData({ name: 'node', plaintext: b64('from node-vault') });
  out.ciphertext = enc.data.ciphertext;
  const dec = await vault.decryptData({ name: 'node', ciphertext: enc.data.ciphertext });
  out.plaintext = unb64(dec.data.plaintext);

  // Encrypt to a key that does not exist yet creates it (root may create).
  const created = await vault.encryptData({ name: 'node-new', plaintext: b64('a new key') });
  out.created = unb64((await vault.decryptData({ name: 'node-new', ciphertext: created.data.ciphertext })).data.plaintext);

  await vault.write('transit/keys/node/rotate', {});
  const rewrapped = await vault.rewrapData({ name: 'node', ciphertext: enc.data.ciphertext });
  out.rewrapped = rewrapped.data.ciphertext;
  out.rewrappedPlaintext = unb64((await vault.decryptData({ name: 'node', ciphertext: rewrapped.data.ciphertext })).data.plaintext);

  out.self = (await vault.tokenLookupSelf()).data;

  // A token of its own, with a policy that may only encrypt to "node".
  await vault.addPolicy({ name: 'node-app', rules: 'path "transit/encrypt/node" { capabilities = ["update"] }' });
  const root = vault.token;
  const child = await vault.tokenCreate({ policies: ['node-app'], ttl: '1h', num_uses: 3 });
  vault.token = root; // node-vault switches to the token it created
  out.child = child.auth;
  const app = require('node-vault')({ apiVersion: 'v1', requestOptions: { ca }, token: child.auth.client_token });
  out.childLookup = (await app.tokenLookupSelf()).data;
  await app.encryptData({ name: 'node', plaintext: b64('by the app') });
  try {
    await app.decryptData({ name: 'node', ciphertext: enc.data.ciphertext });
    out.childDecrypt = 'allowed';
  } catch (e) {
    out.childDecrypt = { status: e.response && e.response.statusCode, message: e.message };
  }
  // Its third and last use: then it is revoked.
  await app.encryptData({ name: 'node', plaintext: b64('last use') });
  try {
    await app.tokenLookupSelf();
    out.afterLastUse = 'still valid';
  } catch (e) {
    out.afterLastUse = { status: e.response && e.response.statusCode, message: e.message };
  }

  // A tampered ciphertext is an error the client reports.
  const bad = enc.data.ciphertext.slice(0, -4) + 'AAA=';
  try {
    await vault.decryptData({ name: 'node', ciphertext: bad });
    out.tampered = 'decrypted';
  } catch (e) {
    out.tampered = { status: e.response && e.response.statusCode, message: e.message };
  }
}

main().then(() => {
  process.stdout.write(JSON.stringify(out));
}, (e) => {
  out.error = String(e && e.message || e);
  if (e && e.response) out.errorStatus = e.response.statusCode;
  process.stdout.write(JSON.stringify(out));
});
