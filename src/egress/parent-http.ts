import { GatewayError } from '../errors/gateway-error';
import type { H1Controller, H1Handler } from './h1-pools';
import { isParentRefusal, type ParentProxy, parentAnswerText, parentRefused } from './parents';

type Headers = Readonly<Record<string, string | readonly string[] | undefined>>;

function parentErrorOf(err: Error): GatewayError | null {
  if (err instanceof GatewayError) return err;
  const cause = (err as { cause?: unknown }).cause;
  return cause instanceof GatewayError ? cause : null;
}

/**
 * Wraps the HTTP/1 leg's handler for a plain HTTP request sent through a parent proxy. A
 * response that is the parent's own refusal (isParentRefusal: a 407, or an error the parent
 * marks as its own) becomes TG_ERR_PARENT_REFUSED naming the parent and its answer, so the
 * client gets a 502 and never the parent's authentication challenge. A connection failure to the
 * parent before the request was written calls `retry` (the next parent of the route) when given.
 */
export function parentAwareHandler(inner: H1Handler, parent: ParentProxy, what: string, retry: (() => void) | null): H1Handler {
  let started = false;
  let refused = false;
  return {
    onRequestStart(controller: H1Controller, context: unknown): void {
      started = true;
      inner.onRequestStart?.(controller, context);
    },
    onRequestUpgrade(controller, status, headers, socket): void {
      inner.onRequestUpgrade?.(controller, status, headers, socket);
    },
    onResponseStart(controller, status, headers, statusMessage): void {
      if (status >= 200 && isParentRefusal(status, headers as Headers)) {
        refused = true;
        controller.abort(parentRefused(parent, parentAnswerText(status, statusMessage ?? '', headers as Headers), what));
        return;
      }
      inner.onResponseStart?.(controller, status, headers, statusMessage);
    },
    onResponseData(controller, chunk): void {
      if (!refused) inner.onResponseData?.(controller, chunk);
    },
    onResponseEnd(controller, trailers): void {
      if (!refused) inner.onResponseEnd?.(controller, trailers);
    },
    onResponseError(controller, err): void {
      const error = parentErrorOf(err);
      if (!started && retry && error?.code === 'TG_ERR_PARENT_UNREACHABLE') {
        retry();
        return;
      }
      inner.onResponseError?.(controller, error ?? err);
    },
  };
}
