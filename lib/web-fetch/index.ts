/** WebFetch: fetched by the worker under an address policy, answered by one model call. */
export { checkTarget, fetchPage, pinnedLookup, systemResolver, DEFAULTS, type FetchPageOptions, type FetchedPage, type Resolver, type ResolvedAddress } from './fetch';
export { WebFetchError, type WebFetchErrorCode } from './errors';
export { checkAddress, checkHostname, classifyAddress, validateCidrs, type AddressCategory, type AddressPolicy, type Verdict } from './address-policy';
export { buildAnswerPrompt, DEFAULT_MODEL_TEXT_CHARS, type AnswerPrompt } from './prompt';
