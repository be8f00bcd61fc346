import net from 'node:net';
import ipaddr from 'ipaddr.js';

/**
 * Which addresses WebFetch may connect to. Pure: the fetcher resolves names
 * and asks here about every address it would use, on every redirect hop.
 */
export type AddressCategory =
  | 'public'
  | 'loopback'
  | 'private'
  | 'link-local'
  | 'metadata'
  | 'unspecified'
  | 'multicast'
  | 'reserved'
  | 'invalid';

export interface AddressPolicy {
  /** Lets loopback, private (incl. carrier-grade NAT, unique-local) and link-local addresses through. */
  allowPrivate?: boolean;
  /** Explicit CIDR exceptions ("10.1.2.0/24", "127.0.0.1/32"); these win over every refusal. */
  allowCidrs?: readonly string[];
}

export type Verdict = { allowed: true; category: AddressCategory } | { allowed: false; category: AddressCategory; reason: string };

/** What allowPrivate opens; the rest (metadata, unspecified, multicast, reserved) stays shut without an explicit CIDR. */
const PRIVATE_CATEGORIES: ReadonlySet<AddressCategory> = new Set(['loopback', 'private', 'link-local']);

/** Instance-metadata endpoints: these hand out cloud credentials, so allowPrivate alone does not open them. */
const METADATA_ADDRESSES = [
  '169.254.169.254', // AWS, GCP, Azure, OpenStack, Oracle
  '169.254.170.2', // AWS ECS task credentials
  '100.100.100.200', // Alibaba Cloud
  'fd00:ec2::254', // AWS IMDS over IPv6
].map((a) => ipaddr.parse(a).toNormalizedString());

const METADATA_HOSTNAMES = new Set([
  'metadata',
  'metadata.google.internal',
  'metadata.goog',
  'instance-data',
  'instance-data.ec2.internal',
]);

const IPV4_CATEGORY: Record<string, AddressCategory> = {
  unicast: 'public',
  unspecified: 'unspecified',
  broadcast: 'multicast',
  multicast: 'multicast',
  linkLocal: 'link-local',
  loopback: 'loopback',
  carrierGradeNat: 'private',
  private: 'private',
};

/** The category of one address in standard notation (as DNS or a URL hostname gives it); anything odd is "invalid". */
export function classifyAddress(address: string): AddressCategory {
  const bare = stripBrackets(address);
  if (net.isIP(bare) === 0) return 'invalid';
  const ip = ipaddr.parse(bare);
  if (METADATA_ADDRESSES.includes(ip.toNormalizedString())) return 'metadata';
  if (ip.kind() === 'ipv4') return IPV4_CATEGORY[ip.range()] ?? 'reserved';
  return classifyIPv6(ip as ipaddr.IPv6);
}

function classifyIPv6(ip: ipaddr.IPv6): AddressCategory {
  const embedded = embeddedIPv4(ip);
  // ::ffff:10.0.0.5 and its NAT64/6to4 cousins reach the IPv4 address inside, so judge that one.
  if (embedded) return classifyAddress(embedded.toString());
  switch (ip.range()) {
    case 'unicast':
      return 'public';
    case 'unspecified':
      return 'unspecified';
    case 'loopback':
      return 'loopback';
    case 'linkLocal':
      return 'link-local';
    case 'uniqueLocal':
      return 'private';
    case 'multicast':
      return 'multicast';
    default:
      // Site-local, local-use NAT64, Teredo, documentation, benchmarking...: nothing a web page lives on.
      return 'reserved';
  }
}

function embeddedIPv4(ip: ipaddr.IPv6): ipaddr.IPv4 | undefined {
  const bytes = ip.toByteArray();
  const range = ip.range() as string;
  if (range === 'ipv4Mapped' || range === 'rfc6145') return new ipaddr.IPv4(bytes.slice(12));
  if (range === 'rfc6052' && ip.match(ipaddr.IPv6.parseCIDR('64:ff9b::/96'))) return new ipaddr.IPv4(bytes.slice(12));
  if (range === '6to4') return new ipaddr.IPv4(bytes.slice(2, 6));
  return undefined;
}

/** Whether the policy lets a connection go to this address, and if not, why in words. */
export function checkAddress(address: string, policy: AddressPolicy = {}): Verdict {
  const category = classifyAddress(address);
  if (category === 'public') return { allowed: true, category };
  if (category !== 'invalid' && inAllowedCidrs(stripBrackets(address), policy.allowCidrs)) return { allowed: true, category };
  if (policy.allowPrivate && PRIVATE_CATEGORIES.has(category)) return { allowed: true, category };
  return { allowed: false, category, reason: describe(category) };
}

/**
 * Refusals that need no DNS: names that mean this machine or the cloud metadata
 * service whatever a resolver says. Undefined when the name may be resolved.
 */
export function checkHostname(hostname: string, policy: AddressPolicy = {}): Verdict | undefined {
  const name = hostname.toLowerCase().replace(/\.$/, '');
  if (METADATA_HOSTNAMES.has(name)) return { allowed: false, category: 'metadata', reason: describe('metadata') };
  if (name === 'localhost' || name.endsWith('.localhost')) {
    return policy.allowPrivate ? { allowed: true, category: 'loopback' } : { allowed: false, category: 'loopback', reason: describe('loopback') };
  }
  return undefined;
}

/** Throws on a malformed entry so a bad configuration fails loudly instead of silently allowing nothing. */
export function validateCidrs(cidrs: readonly string[]): void {
  for (const cidr of cidrs) {
    if (!ipaddr.isValidCIDR(cidr)) throw new Error(`not a CIDR range: ${JSON.stringify(cidr)}`);
  }
}

function inAllowedCidrs(address: string, cidrs: readonly string[] | undefined): boolean {
  if (!cidrs?.length) return false;
  // process() turns ::ffff:127.0.0.1 into 127.0.0.1, so it falls inside 127.0.0.0/8 as it should.
  const ip = ipaddr.process(address);
  return cidrs.some((cidr) => {
    const range = ipaddr.parseCIDR(cidr);
    return ip.kind() === range[0].kind() && ip.match(range);
  });
}

function describe(category: AddressCategory): string {
  switch (category) {
    case 'loopback':
      return 'a loopback address';
    case 'private':
      return 'a private address';
    case 'link-local':
      return 'a link-local address';
    case 'metadata':
      return 'a cloud metadata address';
    case 'unspecified':
      return 'an unspecified address';
    case 'multicast':
      return 'a multicast or broadcast address';
    case 'reserved':
      return 'a reserved address';
    case 'invalid':
      return 'not a valid address';
    case 'public':
      return 'a public address';
  }
}

function stripBrackets(address: string): string {
  return address.startsWith('[') && address.endsWith(']') ? address.slice(1, -1) : address;
}
