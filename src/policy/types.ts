import type { DlpPolicy } from './dlp/dlp-types';
import type { HttpRule } from './rules/rule-types';
import type { Principal } from '../identity/principal';
import type { Host } from '../protocol/host';

export type Action = 'deny' | 'splice' | 'inspect';
export const ACTIONS: readonly Action[] = ['deny', 'splice', 'inspect'];

/** Which front-end saw the flow: decides which port allow-list applies. */
export type FrontendKind = 'explicit-http' | 'explicit-connect' | 'socks' | 'socks-udp' | 'transparent-tls' | 'transparent-http' | 'reverse';

/** A destination pattern as written in a policy file, parsed. */
export type Pattern =
  | { readonly kind: 'exact'; readonly text: string; readonly name: string }
  /** `*.example.com`: subdomains only. */
  | { readonly kind: 'subdomains'; readonly text: string; readonly suffix: string }
  /** `.example.com`: the domain and its subdomains. */
  | { readonly kind: 'domain'; readonly text: string; readonly suffix: string }
  /** An address (as a /32 or /128) or a CIDR block. */
  | { readonly kind: 'cidr'; readonly text: string; readonly family: 'ipv4' | 'ipv6'; readonly bytes: readonly number[]; readonly prefixLength: number };

export interface PolicyRule {
  /** Stable id for logs, block pages and audit: the rule's `name`, else `file:line`. */
  readonly id: string;
  /** Policy file, relative to the policy directory. */
  readonly file: string;
  readonly line: number;
  readonly patterns: readonly Pattern[];
  readonly action: Action;
  /** Ports this rule applies to; null = every port the front-end allows. */
  readonly ports: ReadonlySet<number> | null;
  readonly reason: string | null;
  /** Skip origin certificate verification for this rule (logged at warn on every use). */
  readonly upstreamInsecure: boolean;
  /** Only these users (and members of `groups`) are matched; both null = everyone. */
  readonly users: ReadonlySet<string> | null;
  readonly groups: ReadonlySet<string> | null;
  /** An inspect rule marked required is never switched to splice by pinning detection. */
  readonly required: boolean;
  /**
   * Whether pinning detection (`pinning.mode: auto_splice`) may splice names of this rule.
   * Resolved at load: never when `required`; for a rule with HTTP rules or DLP only when it
   * says `pinning: { auto_splice_allowed: true }` (splicing switches those controls off);
   * otherwise true unless the rule says `auto_splice_allowed: false`.
   */
  readonly autoSpliceAllowed: boolean;
  /**
   * Keep `%2F`, `%5C` and a raw backslash in request paths instead of refusing them (policy/rules/path.ts);
   * only matters with HTTP rules.
   */
  readonly allowEncodedSlashes: boolean;
  /** HTTP rules for requests to these destinations, in order (policy/rules/rule-types.ts). */
  readonly http: readonly HttpRule[];
  /** `cache: false` keeps the HTTP cache out of requests to these destinations. */
  readonly cache: boolean;
  /** Upload inspection for requests to these destinations (policy/dlp/dlp-types.ts); null = none. */
  readonly dlp: DlpPolicy | null;
  /**
   * `socks_bind: true`: SOCKS5 BIND may accept one connection back from these destinations
   * (FTP-style protocols). Off by default: BIND opens a port on the gateway.
   */
  readonly socksBind: boolean;
  /** `via`: parent proxies for these destinations, tried in order; [] = direct; null = `upstream.via`. */
  readonly via: Via | null;
  /**
   * A tunnel whose first bytes are neither TLS nor HTTP (nor a greeting the origin sent first):
   * `deny` (the default when absent) refuses it, `splice` relays it untouched.
   */
  readonly nonTls?: NonTlsAction;
  /**
   * An inspected tunnel whose decrypted stream is not HTTP (ALPN, first bytes, or a server that
   * greets first): `relay` (the default when absent) relays it decrypted, with DLP; `deny` closes it.
   */
  readonly inspectNonHttp?: InspectNonHttpAction;
}

/**
 * How traffic leaves: [] = direct, else named parent proxies (`upstream.parents`) tried in order,
 * the next one only when the one before cannot be reached. Chosen per destination (see routeFor).
 */
export type Via = readonly string[];

export type NonTlsAction = 'deny' | 'splice';
export type InspectNonHttpAction = 'relay' | 'deny';

export interface AllowedPorts {
  /** Ports a tunnel (CONNECT, SOCKS, transparent TLS) may reach without a rule listing them. */
  readonly tunnel: ReadonlySet<number>;
  /** Ports a plain HTTP request may reach without a rule listing them. */
  readonly http: ReadonlySet<number>;
  /** Ports a SOCKS5 UDP datagram may reach without a rule listing them (`allowed_ports.udp`). */
  readonly udp: ReadonlySet<number>;
}

export interface CompiledPolicy {
  readonly rules: readonly PolicyRule[];
  readonly defaultAction: Action;
  readonly allowedPorts: AllowedPorts;
  /** Short hash of every input that shapes decisions; appears in logs and audit records. */
  readonly version: string;
  /** Opaque match index built from `rules`; see match.ts. */
  readonly index: PolicyIndex;
  /** `upstream.via`: the way out of destinations whose rule has no `via`. */
  readonly defaultVia: Via;
}

export interface Candidate {
  readonly rule: PolicyRule;
  readonly pattern: Pattern;
}

export interface PolicyIndex {
  readonly exact: ReadonlyMap<string, readonly Candidate[]>;
  readonly subdomains: ReadonlyMap<string, readonly Candidate[]>;
  readonly domain: ReadonlyMap<string, readonly Candidate[]>;
  /** Most specific (longest prefix) first. */
  readonly cidrs: readonly Candidate[];
}

/** Everything `decide()` may look at. One object, so a decision is reproducible from a log line. */
export interface DecisionInput {
  readonly target: Host;
  readonly port: number;
  /** Server name from the ClientHello, once peeked; null when absent or not TLS. */
  readonly sni: Host | null;
  readonly frontend: FrontendKind;
  /** The authenticated user, when there is one; rules limited to users or groups need it. */
  readonly principal: Principal | null;
  /** Names that pinning detection currently splices instead of inspecting (where their rule allows it). */
  readonly autoSpliced?: ReadonlySet<string>;
}

/**
 * Why a decision came out the way it did, as a stable code for logs, metrics and audit:
 * `rule` a rule matched; `default` no rule matched; `port` the port is not allowed;
 * `sni` the ClientHello named a host that the policy treats more strictly than the target;
 * `pinning` an inspect decision turned into splice because clients pin that name's certificate;
 * `fronting` an inspected flow or request named two different destinations (CONNECT target, SNI,
 * Host or :authority): the one verified with the origin must be the only one.
 */
export type DecisionCode = 'rule' | 'default' | 'port' | 'sni' | 'pinning' | 'fronting';

export interface Decision {
  readonly action: Action;
  readonly code: DecisionCode;
  /** The rule that decided, or null for the default action. */
  readonly rule: PolicyRule | null;
  /** The pattern of `rule` that matched. */
  readonly pattern: string | null;
  /** A sentence a person can act on. */
  readonly reason: string;
  readonly policyVersion: string;
  /** The way out (routeFor); absent on decisions that let nothing out. */
  readonly via?: Via;
}
