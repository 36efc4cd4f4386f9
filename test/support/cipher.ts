/**
 * The secret cipher of tests: a key file's cipher with one fixed key, the same for every store
 * of every test process, as the stores of one deployment share their key.
 */
import { createHash } from 'node:crypto';
import { KeyFileCipher, localKey } from '../../functions/adapters/secrets/key-file.ts';

const shared = new KeyFileCipher([
  localKey(createHash('sha256').update('test secret key').digest(), new Date(0)),
]);

export function testCipher(): KeyFileCipher {
  return shared;
}
