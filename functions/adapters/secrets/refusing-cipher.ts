/**
 * The cipher of a process that reads subscriptions but never their secrets (the ops function,
 * the ops command line): it holds no key, and seals or opens nothing. The subscription stores
 * take a cipher; ops read subscriptions only with `describe` and `listByHealth`, which leave
 * the secrets sealed, so neither ever calls it. A call is a bug, and fails loudly.
 */
import type { SecretCipher } from '../../core/ports.ts';

export const refusingCipher: SecretCipher = {
  seal() {
    return Promise.reject(new Error('this process holds no key: it never seals a signing secret'));
  },
  open() {
    return Promise.reject(new Error('this process holds no key: it never opens a signing secret'));
  },
};
