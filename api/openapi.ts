import { z } from 'zod';
import { ProfileBody } from './routes/profiles';
import { DownloadRequestBody, UploadCompleteBody, UploadRequestBody } from './files';
import { OAuthCodeBody } from './routes/claude-oauth';
import { OutputBody } from './routes/outputs';
import { ForkBody } from './routes/fork';
import { AnswerBody, ApprovalBody } from './routes/approvals';
import { CodecBody, OperatorLoginBody } from './routes/codec';

/**
 * The OpenAPI document served at GET /openapi. Request bodies come from the
 * same zod schemas the routes validate with; a test checks every route is here.
 */
type Op = {
  summary: string;
  body?: z.ZodTypeAny;
  query?: Array<{ name: string; description: string }>;
  responses: Record<string, string>;
  /** Authorised by a signed link (query expires and sig), not the bearer token. */
  signed?: true;
};

const ApiKey = z.object({ api_key: z.string().startsWith('sk-ant-') });
const CreateSession = z.object({
  name: z.string().optional(),
  profile_id: z.string().optional(),
  allowed_tools: z.array(z.string()).optional(),
  denied_tools: z.array(z.string()).optional(),
  initial_prompt: z.string().optional(),
  provider: z.literal('anthropic').optional(),
});
const Capture = z.object({ name: z.string().max(100), description: z.string().max(500).optional() });

const common = { '401': 'Missing or invalid bearer token', '415': 'A body that is not JSON (send Content-Type: application/json)' };
const auditQuery = [
  { name: 'since', description: 'entries at or after this ISO 8601 date-time' },
  { name: 'action', description: 'one action, e.g. session.deny_tool, session.terminate, hive.delete' },
  { name: 'target_type', description: 'session, profile, org, hive_record, rule or output' },
  { name: 'target', description: 'the target id' },
  { name: 'limit', description: '1–500, default 100' },
  { name: 'cursor', description: 'next_cursor of the previous page' },
];
const usageQuery = [
  { name: 'from', description: 'first day (YYYY-MM-DD, UTC), default 29 days before to; the range is at most 366 days' },
  { name: 'to', description: 'last day (YYYY-MM-DD, UTC), default today' },
  { name: 'format', description: 'json (default) or csv; Accept: text/csv also selects CSV' },
];
const usageSummary = 'runtime minutes, tokens and cost from the metering records, in total and by day, model and D&R rule (JSON, or CSV with format=csv or Accept: text/csv)';
const historyQuery = [
  { name: 'after', description: 'return events after this seq (default 0)' },
  { name: 'limit', description: '1–5000, default 1000' },
];
const signedQuery = [
  { name: 'expires', description: 'expiry of the link (unix seconds)' },
  { name: 'sig', description: 'HMAC-SHA256 signature of method, id and expiry' },
];

export const OPERATIONS: Record<string, Record<string, Op>> = {
  '/healthz': { get: { summary: 'Liveness', responses: { '200': 'The process is up' } } },
  '/readyz': { get: { summary: 'Readiness of Temporal, the store and the Docker engine', responses: { '200': 'Ready', '503': 'A dependency is down' } } },
  '/openapi': { get: { summary: 'This document', responses: { '200': 'OpenAPI 3.1 document' } } },
  '/metrics': { get: { summary: 'Prometheus metrics of this gateway (bearer METRICS_TOKEN when set)', responses: { '200': 'Prometheus text format', '401': 'METRICS_TOKEN is set and was not given' } } },
  '/v1/admin/audit': { get: { summary: 'The whole audit trail, newest first (ADMIN_TOKEN)', query: auditQuery, responses: { '200': 'A page of entries', '400': 'Invalid query', '401': 'Bad admin token', '503': 'Administration disabled' } } },
  '/v1/org/audit': { get: { summary: 'The audit trail of the organization: its own actions and administrators’ on its keys, newest first (org API key)', query: auditQuery, responses: { '200': 'A page of entries', '400': 'Invalid query', '401': 'Bad org key' } } },
  '/v1/audit': { get: { summary: 'The calling user’s own audited actions (approvals, answers, terminations, deletions), newest first', query: auditQuery, responses: { '200': 'A page of entries', '400': 'Invalid query', ...common } } },
  '/v1/admin/orgs': {
    get: { summary: 'List organizations (ADMIN_TOKEN)', responses: { '200': 'Organizations', '401': 'Bad admin token', '503': 'Administration disabled' } },
    post: { summary: 'Create an organization; its first API key is shown once (ADMIN_TOKEN)', responses: { '201': 'Created', '400': 'Invalid body', '401': 'Bad admin token', '503': 'Administration disabled' } },
  },
  '/codec/decode': { post: { summary: 'Decode Temporal payloads (codec-server JSON {payloads}) for the Web UI and CLI; operators only (ADMIN_TOKEN bearer or the operator cookie)', body: CodecBody, responses: { '200': 'Decoded payloads', '400': 'Invalid body, or a payload that does not decrypt', '401': 'Not an operator', '503': 'Operator access disabled' } } },
  '/codec/encode': { post: { summary: 'Encode (encrypt) Temporal payloads with the current payload key; operators only', body: CodecBody, responses: { '200': 'Encoded payloads', '400': 'Invalid body', '401': 'Not an operator', '503': 'Operator access disabled' } } },
  '/codec/login': {
    get: { summary: 'The operator sign-in form (HTML)', responses: { '200': 'HTML form' } },
    post: { summary: 'Trade ADMIN_TOKEN ({token}, JSON or form) for a short-lived HttpOnly operator cookie; a form is redirected to the Web UI', body: OperatorLoginBody, responses: { '200': 'Signed in', '303': 'Signed in (form): back to the Web UI', '401': 'Not the admin token', '503': 'Operator access disabled' } },
  },
  '/codec/logout': { post: { summary: 'Clear the operator cookie', responses: { '204': 'Signed out' } } },
  '/v1/admin/orgs/{orgId}/keys': { post: { summary: 'Add an org API key, optionally revoking the others (ADMIN_TOKEN)', responses: { '201': 'Created (shown once)', '401': 'Bad admin token', '404': 'No such organization' } } },
  '/v1/orgs/{orgId}/hive/{hive}': { get: { summary: 'List hive records (secret, ai_agent, lookup); secret values never returned (org API key)', responses: { '200': 'Records', '401': 'Bad org key', '403': 'Key of another organization', '404': 'No such hive' } } },
  '/v1/orgs/{orgId}/hive/{hive}/{name}': {
    get: { summary: 'Get a hive record (org API key)', responses: { '200': 'Record', '401': 'Bad org key', '403': 'Key of another organization', '404': 'Not found' } },
    put: { summary: 'Create or replace a hive record: {data, enabled} (org API key)', responses: { '200': 'Replaced', '201': 'Created', '400': 'Invalid record (field named)', '401': 'Bad org key', '403': 'Key of another organization' } },
    delete: { summary: 'Delete a hive record (org API key)', responses: { '200': 'Deleted', '401': 'Bad org key', '403': 'Key of another organization', '404': 'Not found' } },
  },
  '/v1/orgs/{orgId}/outputs': { get: { summary: 'List the organization’s outputs (webhooks for ended sessions); URLs shown by origin only, secrets never (org API key)', responses: { '200': 'Outputs', '401': 'Bad org key', '403': 'Key of another organization' } } },
  '/v1/orgs/{orgId}/outputs/{name}': {
    get: { summary: 'Get an output (org API key)', responses: { '200': 'Output', '401': 'Bad org key', '404': 'Not found' } },
    put: { summary: 'Create or replace a webhook output: {url, secret, enabled, include_transcript}; a generated signing secret is shown once (org API key)', body: OutputBody, responses: { '200': 'Replaced', '201': 'Created', '400': 'Invalid output (field named)', '401': 'Bad org key', '403': 'Key of another organization' } },
    delete: { summary: 'Delete an output (org API key)', responses: { '200': 'Deleted', '401': 'Bad org key', '404': 'Not found' } },
  },
  '/v1/orgs/{orgId}/outputs/{name}/deliveries': { get: { summary: 'Deliveries to an output, newest first, each with every attempt (org API key)', query: [{ name: 'session_id', description: 'only this session' }, { name: 'limit', description: '1–500, default 100' }], responses: { '200': 'Deliveries', '400': 'Invalid query', '401': 'Bad org key' } } },
  '/v1/orgs/{orgId}/deliveries/{deliveryId}/redeliver': { post: { summary: 'Deliver a delivered or failed delivery again, with a fresh round of retries (org API key)', responses: { '202': 'Started', '401': 'Bad org key', '404': 'Not found', '409': 'Still being attempted, or its output is gone' } } },
  '/v1/orgs/{orgId}/dr/start': { post: { summary: 'Run a start ai agent action for one event {action, routing, event, detect, rule_name}; answers with the session id, or the first one for a duplicate idempotent_key (org API key)', responses: { '201': 'Session started', '202': 'Queued behind its debounce_key', '200': 'Duplicate: the existing session', '400': 'Invalid action (path named)', '401': 'Bad org key', '403': 'Key of another organization', '409': 'A record it uses is disabled' } } },
  '/v1/orgs/{orgId}/rules': { get: { summary: 'List the organization’s D&R rules (org API key)', responses: { '200': 'Rules', '401': 'Bad org key', '403': 'Key of another organization' } } },
  '/v1/orgs/{orgId}/rules/{name}': {
    get: { summary: 'Get a rule as written and parsed (org API key)', responses: { '200': 'Rule', '401': 'Bad org key', '404': 'Not found' } },
    put: { summary: 'Create or replace a rule: detect/respond in YAML (application/yaml) or JSON, optional enabled (org API key)', responses: { '200': 'Replaced', '201': 'Created', '400': 'Invalid rule (path named)', '401': 'Bad org key' } },
    delete: { summary: 'Delete a rule (org API key)', responses: { '200': 'Deleted', '401': 'Bad org key', '404': 'Not found' } },
  },
  '/v1/orgs/{orgId}/events': { post: { summary: 'Ingest events (one JSON object, a JSON array, or NDJSON): enabled rules run, report and start ai agent actions fire (org API key)', responses: { '200': 'What matched and what it did', '400': 'Unparseable body (line named)', '401': 'Bad org key' } } },
  '/v1/orgs/{orgId}/detections': { get: { summary: 'Detections recorded by report actions, newest first (org API key)', query: [{ name: 'limit', description: '1–1000, default 100' }], responses: { '200': 'Detections', '401': 'Bad org key' } } },
  '/v1/org/sessions': { get: { summary: 'List the organization’s sessions, newest first (org API key)', query: [{ name: 'status', description: 'starting, running or ended' }, { name: 'limit', description: '1–200, default 50' }, { name: 'cursor', description: 'next_cursor of the previous page' }], responses: { '200': 'A page of sessions', '400': 'Invalid query', '401': 'Bad org key' } } },
  '/v1/org/sessions/{sessionId}': {
    get: { summary: 'Get an org session: model, runtime minutes, tokens, cost, trigger rule, end reason (org API key)', responses: { '200': 'Session', '401': 'Bad org key', '404': 'Not found' } },
    delete: { summary: 'Terminate an org session (end_reason org_api_requested) (org API key)', responses: { '200': 'Terminated', '401': 'Bad org key', '404': 'Not found', '409': 'Already ended' } },
  },
  '/v1/org/usage': { get: { summary: `The organization’s usage: ${usageSummary} (org API key)`, query: usageQuery, responses: { '200': 'Usage report', '400': 'Invalid query (field named)', '401': 'Bad org key' } } },
  '/v1/org/sessions/{sessionId}/history': { get: { summary: 'Every stored event of an org session, in order (org API key)', query: historyQuery, responses: { '200': 'Events', '400': 'Invalid query (field named)', '401': 'Bad org key', '404': 'Not found' } } },
  '/v1/register': {
    post: { summary: 'Register the calling user (creates the Default and Full Permissions profiles)', responses: { '200': 'Registered', '403': 'Email domain not allowed', '409': 'Already registered', '429': 'Too many registrations', ...common } },
    delete: { summary: 'Deregister: terminate sessions, delete credentials, profiles and records', responses: { '200': 'Deregistered', '404': 'Not registered', ...common } },
  },
  '/v1/auth/claude/apikey': { post: { summary: 'Store an Anthropic API key (sealed at rest)', body: ApiKey, responses: { '200': 'Stored', '400': 'Invalid key', '403': 'Not registered', ...common } } },
  '/v1/auth/claude/start': { post: { summary: 'Start a Claude account sign-in (OAuth authorization code with PKCE)', responses: { '200': 'oauth_session_id and expires_in', '403': 'Not registered', '503': 'OAuth not configured', ...common } } },
  '/v1/auth/claude/url': { get: { summary: 'The authorization URL of a sign-in', query: [{ name: 'session_id', description: 'oauth_session_id from /v1/auth/claude/start' }], responses: { '200': 'url_ready with the URL', '400': 'Invalid query', '403': 'Not registered', '404': 'No such flow, or expired', '409': 'Flow already used', ...common } } },
  '/v1/auth/claude/code': { post: { summary: 'Exchange the authorization code; the tokens are stored sealed as the oauth_token credential', body: OAuthCodeBody, responses: { '200': 'Stored', '400': 'Invalid body or code rejected by the authorization server', '403': 'Not registered', '404': 'No such flow, or expired', '409': 'Flow already used', '502': 'Authorization server failed', '503': 'OAuth not configured', ...common } } },
  '/v1/auth/claude/status': { get: { summary: 'Whether a Claude credential is stored', responses: { '200': 'Status', ...common } } },
  '/v1/auth/claude': { delete: { summary: 'Delete the stored Claude credential', responses: { '200': 'Deleted', ...common } } },
  '/v1/profiles': {
    get: { summary: 'List profiles', responses: { '200': 'Profiles', ...common } },
    post: { summary: 'Create a profile', body: ProfileBody, responses: { '201': 'Created', '400': 'Invalid field (named)', '409': 'Profile limit reached', ...common } },
  },
  '/v1/profiles/{profileId}': {
    get: { summary: 'Get a profile (secret values masked)', responses: { '200': 'Profile', '404': 'Not found', ...common } },
    put: { summary: 'Update a profile; absent fields and masked secret values are kept', body: ProfileBody.partial(), responses: { '200': 'Updated', '400': 'Invalid field (named)', '404': 'Not found', ...common } },
    delete: { summary: 'Delete a profile (not the default)', responses: { '200': 'Deleted', '404': 'Not found', '409': 'It is the default profile', ...common } },
  },
  '/v1/profiles/{profileId}/default': { post: { summary: 'Make a profile the default', responses: { '200': 'Default set', '404': 'Not found', ...common } } },
  '/v1/sessions': {
    get: {
      summary: 'List sessions, newest first',
      query: [
        { name: 'status', description: 'starting, running or ended' },
        { name: 'limit', description: '1–200, default 50' },
        { name: 'cursor', description: 'next_cursor of the previous page' },
      ],
      responses: { '200': 'A page of sessions', '400': 'Invalid query', ...common },
    },
    post: { summary: 'Create a session', body: CreateSession, responses: { '201': 'Created (status starting)', '400': 'Invalid body', '403': 'Not registered or no credentials', '409': 'Concurrent session limit', '429': 'Too many creations', ...common } },
  },
  '/v1/sessions/{sessionId}': {
    get: { summary: 'Get a session, with its runtime minutes, tokens and cost', responses: { '200': 'Session', '404': 'Not found', ...common } },
    delete: { summary: 'Terminate a session (end_reason user_requested)', responses: { '200': 'Terminated', '404': 'Not found', '409': 'Already ended', ...common } },
  },
  '/v1/sessions/{sessionId}/record': { delete: { summary: 'Delete an ended session’s record, events and conversation', responses: { '200': 'Deleted', '404': 'Not found', '409': 'Not ended', ...common } } },
  '/v1/usage': { get: { summary: `The calling user’s usage: ${usageSummary}`, query: usageQuery, responses: { '200': 'Usage report', '400': 'Invalid query (field named)', ...common } } },
  '/v1/sessions/{sessionId}/fork-preflight': { get: { summary: 'Whether a session can be forked (dormant or ended, archive still there), a default name, and its MCP servers missing from the forker’s profile', query: [{ name: 'profile_id', description: 'the forker’s profile (default: the default profile)' }], responses: { '200': 'Preflight report', '400': 'Invalid query or profile', '404': 'Not found (not the caller’s own session)', '410': 'Past retention', ...common } } },
  '/v1/sessions/{sessionId}/fork': { post: { summary: 'Start a new session from a dormant or ended one: its conversation and archived workspace, the forker’s profile; records forked_from_session_id', body: ForkBody, responses: { '201': 'The new session', '400': 'Invalid field (named)', '403': 'Not registered, or no credential', '404': 'Not found (not the caller’s own session)', '409': 'Source not dormant or ended, or a fork of it already in progress', '410': 'Source archive removed after retention', '412': 'Missing MCP servers not acknowledged', '429': 'Maximum concurrent sessions reached', ...common } } },
  '/v1/sessions/{sessionId}/history': { get: { summary: 'Every stored event of the caller’s session, in order (the WebSocket’s events, for REST clients)', query: historyQuery, responses: { '200': 'Events, and next_after (the seq to pass as after) when the page is full', '400': 'Invalid query (field named)', '404': 'Not found', ...common } } },
  '/v1/sessions/{sessionId}/pending': { get: { summary: 'The approval or question the session waits on (with the tool input or the questions), or null', responses: { '200': 'pending, or null', '404': 'Not found', ...common } } },
  '/v1/sessions/{sessionId}/approvals/{requestId}': { post: { summary: 'Answer a tool approval request: y, n, or session (allow matching calls for the rest of the session)', body: ApprovalBody, responses: { '200': 'Accepted', '400': 'Invalid decision or request id', '404': 'Not found', '409': 'No such open request, or the session has ended', ...common } } },
  '/v1/sessions/{sessionId}/questions/{requestId}': { post: { summary: 'Answer the agent’s question', body: AnswerBody, responses: { '200': 'Accepted', '400': 'Invalid answer or request id', '404': 'Not found', '409': 'No such open question, or the session has ended', ...common } } },
  '/v1/sessions/{sessionId}/capture-profile': { post: { summary: 'Create a profile from a session’s settings', body: Capture, responses: { '201': 'Created', '404': 'Not found', '409': 'Profile limit reached', ...common } } },
  '/v1/io/sessions/{sessionId}/upload': { post: { summary: 'A signed link to PUT a file to; it lands in /workspace/uploads/<filename> on completion', body: UploadRequestBody, responses: { '200': 'upload_url, upload_id, target_path, expires_at', '400': 'Invalid body (filename must be a plain name)', '404': 'Not found', '409': 'Session not running', '413': 'size over the limit (100 MiB by default)', '429': 'Too many uploads for this session', ...common } } },
  '/v1/io/sessions/{sessionId}/upload/complete': { post: { summary: 'Place an uploaded file in the session workspace', body: UploadCompleteBody, responses: { '200': 'success and path', '400': 'Invalid body', '404': 'No such session or upload', '409': 'Session not running, or the bytes were not uploaded', ...common } } },
  '/v1/io/sessions/{sessionId}/download': { post: { summary: 'Copy a workspace file out and get a signed link to GET it', body: DownloadRequestBody, responses: { '200': 'download_url and expires_at', '400': 'Invalid body, or not a regular file', '403': 'The path resolves outside /workspace', '404': 'No such session or file', '409': 'Session not running', '413': 'File over the limit', ...common } } },
  '/v1/io/blobs/{blobId}': {
    put: { summary: 'Upload a file’s bytes (the upload_url); the body is the file', signed: true, query: signedQuery, responses: { '200': 'Received (bytes and sha256)', '400': 'Fewer bytes than declared', '403': 'Invalid or expired signature', '404': 'No such upload', '413': 'More bytes than declared' } },
    get: { summary: 'Download an exported file (the download_url)', signed: true, query: signedQuery, responses: { '200': 'The file (application/octet-stream)', '403': 'Invalid or expired signature', '404': 'No such download (expired)' } },
  },
};

/** Frames of the session WebSocket, beyond REST: documented here for clients. */
export const WEBSOCKET = {
  paths: ['/v1/sessions/{sessionId}/ws', '/v1/ws/sessions/{sessionId}'],
  query: { token: 'bearer token (instead of the Authorization header)', since: 'replay every stored event after this seq' },
  clientFrames: ['prompt', 'interrupt', 'heartbeat', 'tool_approval_response', 'ask_user_question_response', 'upload_request', 'upload_complete', 'download_request'],
  serverFrames: [
    'user', 'assistant', 'assistant_delta', 'tool_use', 'tool_result', 'system', 'result', 'session_status', 'session_end',
    'session_error', 'error', 'tool_approval_request', 'ask_user_question', 'usage_delta', 'prompt_ack', 'interrupt_ack', 'heartbeat_ack',
    'tool_approval_response_ack', 'ask_user_question_response_ack', 'upload_url', 'upload_complete_ack', 'download_url',
  ],
  closeCodes: { 4001: 'invalid or missing authentication', 4003: 'session belongs to another user', 4004: 'session not found', 4009: 'session not running', 4100: 'session ended', 4101: 'connection reset', 4500: 'internal error' },
};

export function openApiDocument(version: string) {
  const paths: Record<string, unknown> = {};
  for (const [path, ops] of Object.entries(OPERATIONS)) {
    paths[path] = Object.fromEntries(
      Object.entries(ops).map(([method, op]) => [
        method,
        {
          summary: op.summary,
          ...(path.startsWith('/v1') && !op.signed ? { security: [{ bearer: [] }] } : {}),
          parameters: [
            ...[...path.matchAll(/\{(\w+)\}/g)].map((m) => ({ name: m[1], in: 'path', required: true, schema: { type: 'string' } })),
            ...(op.query ?? []).map((q) => ({ name: q.name, in: 'query', required: false, description: q.description, schema: { type: 'string' } })),
          ],
          ...(op.body ? { requestBody: { required: true, content: { 'application/json': { schema: z.toJSONSchema(op.body, { unrepresentable: 'any' }) } } } } : {}),
          responses: Object.fromEntries(Object.entries(op.responses).map(([code, description]) => [code, { description }])),
        },
      ]),
    );
  }
  return {
    openapi: '3.1.0',
    info: { title: 'ai-sessions', version, description: 'Claude agent sessions for security operations. WebSocket protocol: see x-websocket.' },
    components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' } } },
    paths,
    'x-websocket': WEBSOCKET,
  };
}
