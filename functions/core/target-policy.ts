/**
 * Which callback URLs and addresses we will POST to. A dispatcher that can be pointed at any URL
 * is an SSRF tool: inside a VPC or a Lambda it can reach the instance metadata service, the ECS
 * or EKS credential endpoints, and private services. So a URL is checked when it is registered
 * (scheme, credentials, literal addresses) and every address its host resolves to is checked
 * again at delivery time, after the DNS lookup, to defeat DNS rebinding. An address is public
 * only when it lies outside every block of the IANA IPv4 and IPv6 Special-Purpose Address
 * Registries, outside multicast, and (for IPv6) inside global unicast 2000::/3. DNS lives
 * elsewhere; this module is pure.
 */
import { isIP } from 'node:net';

/** What kind of network an address belongs to; only `public` is reachable by default. */
export type AddressClass =
  | 'public'
  | 'private'
  | 'loopback'
  | 'link-local'
  | 'metadata'
  | 'unspecified'
  | 'multicast'
  | 'reserved';

/** Options of the policy. */
export interface TargetPolicyOptions {
  /**
   * Allows plain http and non-public addresses (the local runtime and its tests deliver to
   * 127.0.0.1). Metadata addresses stay forbidden regardless.
   */
  allowPrivate: boolean;
}

/** The outcome of checking a callback URL: the parsed URL, or why it is refused. */
export type TargetCheck = { ok: true; url: URL } | { ok: false; reason: string };

type Bytes = readonly number[];

interface Range {
  network: Bytes;
  prefixLength: number;
  addressClass: AddressClass;
}

function parseIPv4(text: string): Bytes {
  return text.split('.').map(Number);
}

/** Expands valid IPv6 text (as `isIP` accepts it) to 16 bytes. */
function parseIPv6(text: string): Bytes {
  let address = text.split('%')[0] ?? text;
  const lastColon = address.lastIndexOf(':');
  const tail = address.slice(lastColon + 1);
  if (tail.includes('.')) {
    // A trailing dotted quad, as in ::ffff:127.0.0.1, stands for the last two groups.
    const [a = 0, b = 0, c = 0, d = 0] = parseIPv4(tail);
    address = `${address.slice(0, lastColon + 1)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head = '', rest] = address.split('::');
  const headGroups = head === '' ? [] : head.split(':');
  const restGroups = rest === undefined || rest === '' ? [] : rest.split(':');
  const zeros: string[] = new Array(8 - headGroups.length - restGroups.length).fill('0');
  const groups = rest === undefined ? headGroups : [...headGroups, ...zeros, ...restGroups];
  return groups.flatMap((group) => {
    const value = Number.parseInt(group, 16);
    return [value >> 8, value & 0xff];
  });
}

function range(cidr: string, addressClass: AddressClass): Range {
  const [address = '', length = ''] = cidr.split('/');
  const network = isIP(address) === 4 ? parseIPv4(address) : parseIPv6(address);
  return { network, prefixLength: Number(length), addressClass };
}

function inRange(bytes: Bytes, { network, prefixLength }: Pick<Range, 'network' | 'prefixLength'>): boolean {
  for (let bit = 0; bit < prefixLength; bit += 8) {
    const take = Math.min(8, prefixLength - bit);
    const mask = (0xff << (8 - take)) & 0xff;
    const index = bit / 8;
    if (((bytes[index] ?? 0) & mask) !== ((network[index] ?? 0) & mask)) return false;
  }
  return true;
}

/*
 * The tables below cover every block of the IANA IPv4 and IPv6 Special-Purpose Address Registries
 * (RFC 6890 and its updates; both registries as updated 2025-10-09), plus multicast from the
 * address-space registries and the cloud metadata hosts. First match wins, so a more specific
 * entry comes before the block holding it.
 *
 * - A block the registry marks not globally reachable (False, or N/A) gets the closest class:
 *   private, loopback, link-local, unspecified or multicast where one fits, otherwise reserved.
 * - A block the registry marks globally reachable (the PCP, TURN and DNS-SD anycast addresses,
 *   AMT, AS112 and Direct Delegation AS112, ORCHIDv2, Drone Remote ID DETs) is refused as
 *   reserved as well: these are anycast or identifier spaces of network infrastructure, never a
 *   webhook receiver, and with anycast nobody can say which host would get the request.
 * - The exceptions to both rules are the blocks that carry an IPv4 address which the packet
 *   really reaches (IPv4-mapped ::ffff:0:0/96, NAT64 64:ff9b::/96, 6to4 2002::/16): they are
 *   classified by that IPv4 address, so ::ffff:8.8.8.8 is as public as 8.8.8.8 and
 *   ::ffff:127.0.0.1 is loopback. Teredo (2001::/32) embeds its IPv4 address obfuscated and
 *   behind a relay, so it is refused as reserved like the rest of 2001::/23.
 */

const IPV4_RANGES: readonly Range[] = [
  range('169.254.169.254/32', 'metadata'), // EC2 instance metadata (IMDS); also GCP and Azure
  range('169.254.170.2/32', 'metadata'), // ECS task credentials
  range('169.254.170.23/32', 'metadata'), // EKS Pod Identity credentials
  range('0.0.0.0/32', 'unspecified'), // "this host on this network" (RFC 1122)
  range('0.0.0.0/8', 'unspecified'), // "this network" (RFC 791, RFC 1122)
  range('10.0.0.0/8', 'private'), // private use (RFC 1918)
  range('100.64.0.0/10', 'private'), // shared address space, carrier-grade NAT (RFC 6598)
  range('127.0.0.0/8', 'loopback'), // loopback (RFC 1122)
  range('169.254.0.0/16', 'link-local'), // link local (RFC 3927)
  range('172.16.0.0/12', 'private'), // private use (RFC 1918)
  range('192.0.0.0/29', 'reserved'), // IPv4 service continuity prefix, DS-Lite (RFC 7335)
  range('192.0.0.8/32', 'reserved'), // IPv4 dummy address (RFC 7600)
  range('192.0.0.9/32', 'reserved'), // PCP anycast (RFC 7723), globally reachable
  range('192.0.0.10/32', 'reserved'), // TURN anycast (RFC 8155), globally reachable
  range('192.0.0.170/32', 'reserved'), // NAT64/DNS64 discovery (RFC 8880, RFC 7050)
  range('192.0.0.171/32', 'reserved'), // NAT64/DNS64 discovery (RFC 8880, RFC 7050)
  range('192.0.0.0/24', 'reserved'), // IETF protocol assignments (RFC 6890)
  range('192.0.2.0/24', 'reserved'), // documentation, TEST-NET-1 (RFC 5737)
  range('192.31.196.0/24', 'reserved'), // AS112-v4 (RFC 7535), globally reachable
  range('192.52.193.0/24', 'reserved'), // AMT (RFC 7450), globally reachable
  range('192.88.99.2/32', 'reserved'), // 6a44 relay anycast (RFC 6751)
  range('192.88.99.0/24', 'reserved'), // deprecated 6to4 relay anycast (RFC 7526)
  range('192.168.0.0/16', 'private'), // private use (RFC 1918)
  range('192.175.48.0/24', 'reserved'), // Direct Delegation AS112 (RFC 7534), globally reachable
  range('198.18.0.0/15', 'reserved'), // benchmarking (RFC 2544)
  range('198.51.100.0/24', 'reserved'), // documentation, TEST-NET-2 (RFC 5737)
  range('203.0.113.0/24', 'reserved'), // documentation, TEST-NET-3 (RFC 5737)
  range('224.0.0.0/4', 'multicast'), // multicast (RFC 5771), from the IPv4 address-space registry
  range('255.255.255.255/32', 'reserved'), // limited broadcast (RFC 8190, RFC 919)
  range('240.0.0.0/4', 'reserved'), // reserved for future use (RFC 1112)
];

const IPV6_RANGES: readonly Range[] = [
  range('::/128', 'unspecified'), // unspecified address (RFC 4291)
  range('::1/128', 'loopback'), // loopback address (RFC 4291)
  range('fd00:ec2::254/128', 'metadata'), // EC2 IMDS over IPv6
  range('fd00:ec2::23/128', 'metadata'), // EKS Pod Identity over IPv6
  // ::ffff:0:0/96 (IPv4-mapped, RFC 4291) and 64:ff9b::/96 (NAT64, RFC 6052) are classified by
  // the IPv4 address they embed, see IPV4_EMBEDDING_RANGES.
  range('64:ff9b:1::/48', 'private'), // local-use NAT64 (RFC 8215): reaches the site's own IPv4
  range('100::/64', 'reserved'), // discard-only (RFC 6666)
  range('100:0:0:1::/64', 'reserved'), // dummy IPv6 prefix (RFC 9780)
  range('2001::/32', 'reserved'), // Teredo (RFC 4380, RFC 8190): embeds an obfuscated IPv4 address
  range('2001:1::1/128', 'reserved'), // PCP anycast (RFC 7723), globally reachable
  range('2001:1::2/128', 'reserved'), // TURN anycast (RFC 8155), globally reachable
  range('2001:1::3/128', 'reserved'), // DNS-SD SRP anycast (RFC 9665), globally reachable
  range('2001:2::/48', 'reserved'), // benchmarking (RFC 5180, RFC Errata 1752)
  range('2001:3::/32', 'reserved'), // AMT (RFC 7450), globally reachable
  range('2001:4:112::/48', 'reserved'), // AS112-v6 (RFC 7535), globally reachable
  range('2001:10::/28', 'reserved'), // deprecated, previously ORCHID (RFC 4843)
  range('2001:20::/28', 'reserved'), // ORCHIDv2 (RFC 7343), globally reachable
  range('2001:30::/28', 'reserved'), // Drone Remote ID entity tags (RFC 9374), globally reachable
  range('2001::/23', 'reserved'), // IETF protocol assignments (RFC 2928)
  range('2001:db8::/32', 'reserved'), // documentation (RFC 3849)
  // 2002::/16 (6to4, RFC 3056) is classified by the IPv4 address it embeds, see classifyIPv6.
  range('2620:4f:8000::/48', 'reserved'), // Direct Delegation AS112 (RFC 7534), globally reachable
  range('3fff::/20', 'reserved'), // documentation (RFC 9637)
  range('5f00::/16', 'reserved'), // segment routing (SRv6) SIDs (RFC 9602)
  range('fc00::/7', 'private'), // unique local (RFC 4193, RFC 8190)
  range('fec0::/10', 'private'), // deprecated site-local (RFC 3879), not in the registry
  range('fe80::/10', 'link-local'), // link-local unicast (RFC 4291)
  range('ff00::/8', 'multicast'), // multicast (RFC 4291), from the IPv6 address-space registry
];

/** IPv6 ranges whose last 32 bits are an IPv4 address that is what the packet really reaches. */
const IPV4_EMBEDDING_RANGES: readonly Pick<Range, 'network' | 'prefixLength'>[] = [
  range('::ffff:0:0/96', 'public'), // IPv4-mapped
  range('::ffff:0:0:0/96', 'public'), // IPv4-translated (SIIT)
  range('64:ff9b::/96', 'public'), // well-known NAT64 prefix
];

/** Only 2000::/3 is allocated as global unicast; whatever else is not listed above is reserved. */
const GLOBAL_UNICAST = range('2000::/3', 'public');
const SIX_TO_FOUR = range('2002::/16', 'public');
const IPV4_COMPATIBLE = range('::/96', 'public');

function classifyIPv4(bytes: Bytes): AddressClass {
  return IPV4_RANGES.find((r) => inRange(bytes, r))?.addressClass ?? 'public';
}

function classifyIPv6(bytes: Bytes): AddressClass {
  if (IPV4_EMBEDDING_RANGES.some((r) => inRange(bytes, r))) return classifyIPv4(bytes.slice(12));
  const listed = IPV6_RANGES.find((r) => inRange(bytes, r));
  if (listed) return listed.addressClass;
  // Deprecated IPv4-compatible form ::a.b.c.d; :: and ::1 were classified above.
  if (inRange(bytes, IPV4_COMPATIBLE)) return classifyIPv4(bytes.slice(12));
  if (inRange(bytes, SIX_TO_FOUR)) {
    // 6to4 carries an IPv4 address in bits 16-47; refuse it when that one is not public.
    const embedded = classifyIPv4(bytes.slice(2, 6));
    if (embedded !== 'public') return embedded;
  }
  return inRange(bytes, GLOBAL_UNICAST) ? 'public' : 'reserved';
}

/**
 * Classifies an IPv4 or IPv6 address given as text (an IPv6 zone id is ignored). Addresses that
 * embed an IPv4 address (::ffff:a.b.c.d, NAT64, 6to4) are classified by the IPv4 address.
 * @throws Error when the text is not an IP address.
 */
export function classifyAddress(ip: string): AddressClass {
  switch (isIP(ip)) {
    case 4:
      return classifyIPv4(parseIPv4(ip));
    case 6:
      return classifyIPv6(parseIPv6(ip));
    default:
      throw new Error(`${ip} is not an IP address`);
  }
}

function refusal(subject: string, addressClass: AddressClass, options: TargetPolicyOptions): string | null {
  if (addressClass === 'metadata') return `${subject} is a cloud metadata address`;
  if (addressClass === 'public' || options.allowPrivate) return null;
  return `${subject} is ${addressClass}`;
}

/**
 * Checks a callback URL at registration: http(s) only, https unless private targets are allowed,
 * no credentials, and a literal IP or localhost host must be public (never metadata). Hosts that
 * are names pass here; their addresses are checked with `checkResolvedAddress` when resolved.
 */
export function checkTargetUrl(url: string, options: TargetPolicyOptions): TargetCheck {
  // WHATWG parsing strips and encodes what a URL should not carry: refuse it as given instead.
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what it finds
  if (/[\s\u0000-\u001f\u007f]/.test(url)) {
    return { ok: false, reason: 'the URL holds whitespace or a control character; encode it' };
  }
  let parsed: URL;
  try {
    // WHATWG parsing already turns 2130706433, 0177.0.0.1 and 0x7f.1 into 127.0.0.1 and
    // compresses IPv6, so the classification below sees canonical addresses only.
    parsed = new URL(url);
  } catch {
    return { ok: false, reason: 'the URL is not valid' };
  }
  if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:') {
    return { ok: false, reason: `scheme ${parsed.protocol} is not allowed; use https` };
  }
  if (parsed.protocol === 'http:' && !options.allowPrivate) return { ok: false, reason: 'https is required' };
  if (parsed.username !== '' || parsed.password !== '') {
    return { ok: false, reason: 'credentials in the URL are not allowed' };
  }
  if (parsed.port === '0') return { ok: false, reason: 'port 0 is not a port a receiver listens on' };

  const host = parsed.hostname.replace(/\.+$/, '');
  const ip = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
  let reason: string | null = null;
  if (isIP(ip) !== 0) {
    reason = refusal(`address ${ip}`, classifyAddress(ip), options);
  } else if (host === 'localhost' || host.endsWith('.localhost')) {
    // RFC 6761: resolvers may answer *.localhost with loopback without asking DNS.
    reason = refusal(`host ${host}`, 'loopback', options);
  }
  return reason === null ? { ok: true, url: parsed } : { ok: false, reason };
}

/**
 * Checks one address a callback host resolved to, at delivery time (DNS rebinding): the reason
 * it is refused, or null when it may be contacted.
 */
export function checkResolvedAddress(ip: string, options: TargetPolicyOptions): string | null {
  if (isIP(ip) === 0) return `${ip} is not an IP address`;
  return refusal(`address ${ip}`, classifyAddress(ip), options);
}
