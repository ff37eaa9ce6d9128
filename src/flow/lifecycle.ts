import { asGatewayError } from '../errors/gateway-error';
import type { CloseKind, Flow } from './flow';

/**
 * Runs one flow from accept to close. `stages` carries it through whatever its front-end and
 * terminal do and resolves with how it ended; whatever happens, the flow is closed exactly
 * once, here, and nowhere else: an exception in a stage closes it as `error` with the cause on
 * its record. Every front-end creates its flows and hands them to this function.
 */
export async function runFlow(flow: Flow, stages: () => Promise<CloseKind>): Promise<void> {
  let close: CloseKind;
  try {
    close = await stages();
  } catch (err) {
    const error = asGatewayError(err, 'relay');
    flow.failed(error);
    flow.log.warn({ err: error }, 'flow failed');
    close = 'error';
  }
  flow.close(close);
}
