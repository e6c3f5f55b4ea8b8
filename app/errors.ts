// One error type for everything the engine refuses or fails at.
//
// Every message names the file it is about (when there is one) and ends with what the
// user can do about it, so the CLI, the job queue and the UI can show `message` as is.

/** Stable machine-readable reasons. The UI and the catalog store these strings. */
export type DuoscaleErrorCode =
  | 'E_NOT_FOUND'          // input file does not exist
  | 'E_EMPTY'              // zero-byte file
  | 'E_TRUNCATED'          // decoder ran out of data
  | 'E_NOT_IMAGE'          // content is not a format we can decode
  | 'E_CORRUPT'            // decoder failed for another reason
  | 'E_TOO_LARGE'          // over the pixel limit
  | 'E_OUTPUT_UNWRITABLE'  // output folder missing rights / not creatable
  | 'E_WOULD_OVERWRITE'    // output path equals the input path
  | 'E_BAD_OPTION'         // an option value that cannot work for this file
  | 'E_MODEL_NOT_FOUND'
  | 'E_MODEL_MANIFEST'     // manifest missing, unreadable or with bad/missing fields
  | 'E_MODEL_HASH'         // sha256 of the .onnx does not match the manifest
  | 'E_MODEL_BUILTIN'      // refusing to remove a shipped model
  | 'E_MODEL_EXISTS'       // import would replace a model with the same name
  | 'E_INFERENCE'          // onnxruntime failed (not for memory)
  | 'E_OUT_OF_MEMORY'      // a tile failed for memory even at the smallest tile size
  | 'E_CANCELLED';         // the AbortSignal fired

export interface DuoscaleErrorOptions {
  /** The file the error is about (input photo, output folder, model file). */
  file?: string;
  /** What the user can do about it; appended to the message. */
  hint?: string;
  cause?: unknown;
}

/**
 * An error the user can act on.
 *
 * `message` = "<file>: <problem>. <hint>" (file and hint left out when absent), so it reads
 * well on its own in a terminal or a toast. `code`, `file` and `hint` are kept separately for
 * programs.
 *
 * @example
 * throw new DuoscaleError('E_EMPTY', 'the file is empty (0 bytes)', {
 *   file: '/photos/a.jpg', hint: 'Copy the photo again from its source' });
 */
export class DuoscaleError extends Error {
  readonly code: DuoscaleErrorCode;
  readonly file?: string;
  readonly hint?: string;
  /** The problem alone, without file and hint. */
  readonly problem: string;

  constructor(code: DuoscaleErrorCode, problem: string, options: DuoscaleErrorOptions = {}) {
    const parts: string[] = [];
    parts.push(options.file ? `${options.file}: ${problem}` : problem);
    let message = parts.join('');
    if (!/[.!?]$/.test(message)) message += '.';
    if (options.hint) message += ` ${options.hint}${/[.!?]$/.test(options.hint) ? '' : '.'}`;
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'DuoscaleError';
    this.code = code;
    this.file = options.file;
    this.hint = options.hint;
    this.problem = problem;
  }

  /** Plain JSON for the API/catalog (Errors do not serialise their own fields). */
  toJSON(): { name: string; code: DuoscaleErrorCode; message: string; file?: string; hint?: string } {
    return { name: this.name, code: this.code, message: this.message, file: this.file, hint: this.hint };
  }
}

export function isDuoscaleError(e: unknown): e is DuoscaleError {
  return e instanceof DuoscaleError;
}

/** Throws E_CANCELLED when the signal has fired. Call between tiles and stages. */
export function throwIfAborted(signal: AbortSignal | undefined, file?: string): void {
  if (signal?.aborted) {
    throw new DuoscaleError('E_CANCELLED', 'cancelled', { file, hint: 'Start the job again to redo it' });
  }
}
