import { DefaultFailureConverter } from '@temporalio/common';

/**
 * Failure messages and stack traces go into history as an encoded payload,
 * which the payload codec encrypts, instead of plain text. Loaded by path
 * (DataConverter.failureConverterPath) because workflow code runs in its own
 * sandbox: bundles are built with it too.
 */
export const failureConverter = new DefaultFailureConverter({ encodeCommonAttributes: true });
