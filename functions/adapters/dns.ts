import { lookup } from 'node:dns/promises';
import type { AddressResolver } from '../core/ports.ts';

/** The operating system's resolver (getaddrinfo), as a connection would use it. */
export const systemResolver: AddressResolver = {
  async resolve(hostname) {
    const addresses = await lookup(hostname, { all: true });
    return addresses.map((a) => a.address);
  },
};
