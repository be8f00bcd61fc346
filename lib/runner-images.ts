/**
 * Which sandbox images a session may run on: the default runner image, plus
 * those the operator lists in RUNNER_IMAGE_ALLOWLIST. Refs compare exactly as
 * written (`name` and `name:latest` are different entries), so what an
 * operator reviewed is what runs.
 */

/** A Docker image reference: [host[:port]/]path[:tag][@sha256:digest]. */
export const IMAGE_REF =
  /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?::\d+)?(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*(?::\w[\w.-]{0,127})?(?:@sha256:[a-f0-9]{64})?$/;

export interface ImagePolicy {
  runnerImage: string;
  runnerImageAllowlist: readonly string[];
}

/** The default image first, then the allow-list; the default is always allowed. */
export function allowedImages(policy: ImagePolicy): string[] {
  return [...new Set([policy.runnerImage, ...policy.runnerImageAllowlist])];
}

/** A "field: problem" line when a profile names an image outside the policy; undefined when it may run. */
export function imageProblem(image: string | undefined, policy: ImagePolicy, field = 'image'): string | undefined {
  if (image === undefined) return undefined;
  const allowed = allowedImages(policy);
  if (allowed.includes(image)) return undefined;
  return `${field}: ${image} is not an allowed runner image; allowed: ${allowed.join(', ')}`;
}
