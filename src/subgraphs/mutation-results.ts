/**
 * Expected failures of mutations are data, not exceptions: `{ ok, error {
 * code, message, inputErrors } }` as the schema says. Nothing is written
 * when ok is false.
 */
export type MutationErrorCode = 'INVALID_INPUT' | 'NOT_FOUND' | 'CONFLICT';

export interface InputError {
  field: string;
  message: string;
}

export interface MutationError {
  code: MutationErrorCode;
  message: string;
  inputErrors: InputError[];
}

/** A mutation that did not happen; the payload's other fields stay null. */
export interface Failure {
  ok: false;
  error: MutationError;
}

export function failed(code: MutationErrorCode, message: string, inputErrors: InputError[] = []): Failure {
  return { ok: false, error: { code, message, inputErrors } };
}

/** Collects input problems; `problems` is empty when the input is valid. */
export class InputCheck {
  readonly problems: InputError[] = [];

  require(condition: boolean, field: string, message: string): this {
    if (!condition) this.problems.push({ field, message });
    return this;
  }

  get ok(): boolean {
    return this.problems.length === 0;
  }
}

export function invalidInput(check: InputCheck): Failure {
  const fields = [...new Set(check.problems.map((problem) => problem.field))].join(', ');
  return failed('INVALID_INPUT', `The input is not valid: ${fields}.`, check.problems);
}
