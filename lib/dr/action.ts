/**
 * The D&R `start ai agent` response action: parsing (at rule-save time and
 * again when the rule fires) and resolution into a launch plan. Pure: Hive
 * references (hive://secret/…, hive://ai_agent/…) stay strings here and are
 * resolved later by an activity, so a plan never holds a fetched secret.
 */
import { z } from 'zod';
import { SessionProfileSchema, type SessionProfile } from '../profile';
import { dataBlock, extractData, renderTemplate, renderTemplateDetailed, validateTemplate, type TemplateContext } from './templates';

/** The current name, then the one the overview page still shows. */
export const ACTION_NAMES = ['start ai agent', 'start ai session'] as const;
const SECRET_REF = /^hive:\/\/secret\/[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
const AGENT_REF = /^hive:\/\/ai_agent\/([A-Za-z0-9][A-Za-z0-9._-]{0,127})$/;
const HIVE_FORM = 'a Hive reference must have the form hive://secret/<name>';
/** Fields that only an inline action may carry: in definition mode the ai_agent record supplies them. */
const INLINE_ONLY = ['anthropic_secret', 'lc_api_key_secret', 'lc_uid_secret', 'profile', 'profile_name'];
const PROFILE_KEYS = Object.keys(SessionProfileSchema.shape);

/** `issues` holds one "path: problem" line per fault, so a rule editor can show them all at once. */
export class ActionError extends Error {
  override name = 'ActionError';
  constructor(readonly issues: string[]) {
    super(issues.join('; '));
  }
}

/** "is required" for a missing field instead of zod's "expected string, received undefined". */
const typed = (what: string) => ({ error: (iss: { input?: unknown }) => (iss.input === undefined ? 'is required' : `must be ${what}`) });
const nonBlank = (s: string) => s.trim() !== '';
const template = z.string(typed('a string')).refine(nonBlank, 'cannot be empty').superRefine((t, ctx) => {
  for (const message of validateTemplate(t)) ctx.addIssue({ code: 'custom', message });
});
// A literal is allowed (the docs permit it) but a mistyped hive:// must not be sent on as if it were the key itself.
const secret = z.string(typed('a string')).refine(nonBlank, 'cannot be empty')
  .refine((s) => !s.startsWith('hive://') || SECRET_REF.test(s), HIVE_FORM);
const anthropicSecret = z.string(typed('a string')).superRefine((s, ctx) => {
  if (s.startsWith('hive://') ? !SECRET_REF.test(s) : !s.startsWith('sk-ant-')) {
    ctx.addIssue({ code: 'custom', message: s.startsWith('hive://') ? HIVE_FORM : 'must be hive://secret/<name> or an Anthropic API key (sk-ant-…)' });
  }
});
const dataMap = z.record(z.string(), z.unknown(), typed('a map of names to templates, paths or values')).superRefine((m, ctx) => {
  for (const [key, v] of Object.entries(m)) {
    if (typeof v === 'string') for (const message of validateTemplate(v)) ctx.addIssue({ code: 'custom', path: [key], message });
  }
});

type SecretHolder = Pick<SessionProfile, 'environment' | 'mcp_servers'>;
/** Environment and MCP header/env values may be literals, but one that starts hive:// must be a well-formed reference. */
const refineSecrets = (p: SecretHolder, ctx: { addIssue(i: { code: 'custom'; path: string[]; message: string }): void }) => {
  const check = (values: Record<string, string> | undefined, path: string[]) => {
    for (const [k, v] of Object.entries(values ?? {})) {
      if (v.startsWith('hive://') && !SECRET_REF.test(v)) ctx.addIssue({ code: 'custom', path: [...path, k], message: HIVE_FORM });
    }
  };
  check(p.environment, ['environment']);
  for (const [name, s] of Object.entries(p.mcp_servers ?? {})) {
    check(s.type === 'http' ? s.headers : s.env, ['mcp_servers', name, s.type === 'http' ? 'headers' : 'env']);
  }
};

const common = {
  action: z.enum(ACTION_NAMES, typed('"start ai agent" (or the older "start ai session")')),
  name: template.optional(),
  idempotent_key: template.optional(),
  debounce_key: template.optional(),
  data: dataMap.optional(),
};
const InlineSchema = z.object({
  ...common,
  prompt: template,
  anthropic_secret: anthropicSecret,
  lc_api_key_secret: secret.optional(),
  lc_uid_secret: secret.optional(),
  profile: SessionProfileSchema.superRefine(refineSecrets).optional(),
}).strict();
const DefinitionSchema = z.object({
  ...common,
  definition: z.string(typed('a string')).regex(AGENT_REF, 'must have the form hive://ai_agent/<name>'),
  prompt: template.optional(),
}).strict();

// Provider blocks are checked for shape only: record-based launches do not apply them yet (see plan warnings).
const bedrock = z.object({
  region: z.string(typed('a string')).min(1),
  access_key_id_secret: secret.optional(),
  secret_access_key_secret: secret.optional(),
  session_token_secret: secret.optional(),
  bearer_token_secret: secret.optional(),
}, typed('a map')).strict().refine((b) => !b.access_key_id_secret === !b.secret_access_key_secret,
  'access_key_id_secret and secret_access_key_secret must be given together');
const vertex = z.object({
  project_id: z.string(typed('a string')).min(1),
  region: z.string(typed('a string')).min(1),
  service_account_json_secret: secret.optional(),
}, typed('a map')).strict();

/** The data of an ai_agent Hive record: session settings sit at its top level, next to prompt and credentials. */
export const AgentRecordSchema = SessionProfileSchema.omit({ network_access: true }).extend({
  prompt: template,
  anthropic_secret: anthropicSecret,
  bedrock: bedrock.optional(),
  vertex: vertex.optional(),
  lc_api_key_secret: secret.optional(),
  lc_uid_secret: secret.optional(),
  name: template.optional(),
  data: dataMap.optional(),
  debounce_key: template.optional(),
  idempotent_key: template.optional(),
}).strict().superRefine(refineSecrets);

export type AgentRecord = z.infer<typeof AgentRecordSchema>;
export type InlineAction = z.infer<typeof InlineSchema> & { mode: 'inline' };
export type DefinitionAction = z.infer<typeof DefinitionSchema> & { mode: 'definition'; agentName: string };
export type DrAction = InlineAction | DefinitionAction;

/** `respond[1]` + ['profile', 'allowed_tools', 0] → `respond[1].profile.allowed_tools[0]`. */
function formatPath(prefix: string, path: readonly PropertyKey[], root: string): string {
  let out = prefix;
  for (const k of path) {
    if (typeof k === 'number') out += `[${k}]`;
    else if (/^[A-Za-z_][\w-]*$/.test(String(k))) out += `${out ? '.' : ''}${String(k)}`;
    else out += `[${JSON.stringify(String(k))}]`;
  }
  return out || root;
}

type Issue = z.core.$ZodIssue;
function explain(issues: readonly Issue[], at: (p: readonly PropertyKey[]) => string, hint: (key: string, depth: number) => string, base: PropertyKey[] = []): string[] {
  return issues.flatMap((i): string[] => {
    const path = [...base, ...i.path];
    if (i.code === 'unrecognized_keys') return i.keys.map((k) => `${at([...path, k])}: unknown field${hint(k, path.length)}`);
    // A bad record key (a reserved environment name) wraps its reason in nested issues.
    if (i.code === 'invalid_key') return [`${at(path)}: ${i.issues.map((x) => x.message).join(', ')}`];
    if (i.code === 'invalid_union' && i.errors.length > 0) {
      // Union of tagged shapes (mcp servers): a wrong tag fails every branch at the tag; else report the branch that got past it.
      const tag = (b: Issue[]) => b.find((x) => x.code === 'invalid_value' && x.path.length === 1);
      const tagged = i.errors.map(tag);
      if (tagged.every(Boolean)) {
        const values = tagged.flatMap((t) => (t?.code === 'invalid_value' ? t.values : []));
        return [`${at([...path, ...tagged[0]!.path])}: must be one of ${values.map((v) => JSON.stringify(v)).join(', ')}`];
      }
      const best = i.errors.filter((b) => !tag(b)).sort((a, b) => a.length - b.length)[0]!;
      return explain(best, at, hint, path);
    }
    return [`${at(path)}: ${i.message}`];
  });
}

const own = (o: object, k: string) => Object.prototype.hasOwnProperty.call(o, k);
const isMap = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

export function isDrAction(value: unknown): boolean {
  return isMap(value) && (ACTION_NAMES as readonly unknown[]).includes(value.action);
}

/** `hive://ai_agent/NAME` → NAME, or null. */
/** The name in a `hive://secret/NAME` reference, or undefined for anything else. */
export function hiveSecretName(ref: string): string | undefined {
  return /^hive:\/\/secret\/(.+)$/.exec(ref)?.[1];
}

export function parseDefinitionRef(ref: string): string | null {
  return AGENT_REF.exec(ref)?.[1] ?? null;
}

/** Parses one respond entry; pathPrefix (e.g. `respond[1]`) starts every error path. Throws ActionError. */
export function parseAction(value: unknown, pathPrefix = ''): DrAction {
  const at = (p: readonly PropertyKey[]) => formatPath(pathPrefix, p, '(action)');
  if (!isMap(value)) throw new ActionError([`${at([])}: an action must be a map of fields`]);
  const definitionMode = own(value, 'definition');
  const issues: string[] = [];
  const rest: Record<string, unknown> = { ...value };
  if (definitionMode) {
    for (const f of INLINE_ONLY.filter((k) => own(value, k))) {
      issues.push(`${at([f])}: not allowed with definition (the ai_agent record supplies it); only prompt, data, name, debounce_key and idempotent_key may augment a definition`);
      delete rest[f];
    }
  } else if (own(value, 'profile_name')) {
    issues.push(own(value, 'profile')
      ? `${at(['profile_name'])}: profile and profile_name cannot both be set`
      : `${at(['profile_name'])}: saved profiles are only for user sessions; give a D&R action its settings inline under profile`);
    delete rest.profile_name;
  }
  const hint = (key: string, depth: number) => (depth === 0 && PROFILE_KEYS.includes(key)
    ? (definitionMode ? ' (with definition, session settings come from the ai_agent record)' : ` (session settings go under profile, e.g. profile.${key})`)
    : '');
  const r = definitionMode ? DefinitionSchema.safeParse(rest) : InlineSchema.safeParse(rest);
  if (!r.success) issues.push(...explain(r.error.issues, at, hint));
  if (issues.length > 0 || !r.success) throw new ActionError(issues);
  return 'definition' in r.data
    ? { ...r.data, mode: 'definition', agentName: parseDefinitionRef(r.data.definition)! }
    : { ...r.data, mode: 'inline' };
}

/** Parses the `data` object of an ai_agent Hive record. Throws ActionError. */
export function parseAgentRecord(value: unknown, pathPrefix = ''): AgentRecord {
  const at = (p: readonly PropertyKey[]) => formatPath(pathPrefix, p, '(record)');
  const hint = (key: string, depth: number) => (depth === 0 && key === 'profile' ? ' (a record holds its session settings at the top level)' : '');
  const r = AgentRecordSchema.safeParse(value);
  if (!r.success) throw new ActionError(explain(r.error.issues, at, hint));
  return r.data;
}

export interface ActionPlan {
  name?: string;
  /** Rendered prompt(s), then the merged data as a JSON block when there is any. */
  prompt: string;
  /** hive://secret/… reference or literal key, unresolved. */
  anthropicSecret: string;
  lcApiKeySecret?: string;
  lcUidSecret?: string;
  idempotentKey?: string;
  debounceKey?: string;
  profile: SessionProfile;
  data: Record<string, unknown>;
  /** Things the launcher should log: dropped keys, unapplied provider blocks. */
  warnings: string[];
}

/**
 * A key whose placeholder rendered empty is dropped: "investigate-" or "" for every
 * event lacking the field would wrongly merge (idempotent) or queue (debounce) them.
 */
function renderKey(field: string, key: string | undefined, ctx: TemplateContext, warnings: string[]): string | undefined {
  if (key === undefined) return undefined;
  const r = renderTemplateDetailed(key, ctx);
  if (r.empty.length === 0 && nonBlank(r.text)) return r.text;
  warnings.push(`${field} not applied: ${r.empty.join(', ') || 'the key'} rendered empty for this event, and a partial key would tie unrelated events together`);
  return undefined;
}

/** The session settings of a record: its profile fields, re-checked so nothing else rides along. */
function profileOf(record: AgentRecord): SessionProfile {
  return SessionProfileSchema.parse(Object.fromEntries(Object.entries(record).filter(([k]) => PROFILE_KEYS.includes(k))));
}

/** Turns a parsed action (and, in definition mode, its loaded ai_agent record) into a launch plan for one event. */
export function resolveAction(action: DrAction, ctx: TemplateContext, record?: AgentRecord): ActionPlan {
  if (action.mode === 'definition' && !record) throw new Error(`the ai_agent record ${action.definition} must be loaded before resolving`);
  if (action.mode === 'inline' && record) throw new Error('an inline action takes no ai_agent record');
  const src = action.mode === 'definition' ? record : undefined;
  const warnings: string[] = [];
  for (const block of ['bedrock', 'vertex'] as const) {
    if (src?.[block]) warnings.push(`the ai_agent record's ${block} block is accepted but not applied to D&R launches yet; the session uses anthropic_secret`);
  }
  // Each part renders on its own so a broken template in one cannot swallow the other; one blank line between them.
  const parts = [src?.prompt, action.prompt].filter((p): p is string => p !== undefined).map((p) => renderTemplate(p, ctx).trimEnd());
  const data = { ...extractData(src?.data ?? {}, ctx), ...extractData(action.data ?? {}, ctx) };
  if (Object.keys(data).length > 0) parts.push(dataBlock(data));

  const nameTemplate = action.name ?? src?.name;
  const name = nameTemplate === undefined ? undefined : renderTemplate(nameTemplate, ctx).trim();
  if (name === '') warnings.push('name rendered empty for this event; the session is unnamed');
  const base = action.mode === 'inline' ? action.profile ?? {} : profileOf(record!);
  const credentials: Pick<AgentRecord, 'anthropic_secret' | 'lc_api_key_secret' | 'lc_uid_secret'> = action.mode === 'inline' ? action : record!;
  const plan: ActionPlan = {
    prompt: parts.join('\n\n'),
    anthropicSecret: credentials.anthropic_secret,
    profile: { ...base, one_shot: base.one_shot ?? true }, // D&R sessions finish their task and end unless told otherwise
    data,
    warnings,
  };
  if (name) plan.name = name;
  if (credentials.lc_api_key_secret) plan.lcApiKeySecret = credentials.lc_api_key_secret;
  if (credentials.lc_uid_secret) plan.lcUidSecret = credentials.lc_uid_secret;
  const idempotentKey = renderKey('idempotent_key', action.idempotent_key ?? src?.idempotent_key, ctx, warnings);
  const debounceKey = renderKey('debounce_key', action.debounce_key ?? src?.debounce_key, ctx, warnings);
  if (idempotentKey !== undefined) plan.idempotentKey = idempotentKey;
  if (debounceKey !== undefined) plan.debounceKey = debounceKey;
  return plan;
}
