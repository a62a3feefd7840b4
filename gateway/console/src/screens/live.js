// The tenant's event stream, for screens that refresh when executions move.
import { useEffect, useRef } from 'react';
import { debounce } from './common.jsx';

const KINDS = ['execution_started', 'execution_finished', 'node_failed', 'responded', 'lagged'];

/** Calls `onChange` (debounced by `ms`) whenever an execution of the tenant starts or ends. */
export function useTenantEvents(onChange, ms = 800) {
  const latest = useRef(onChange);
  latest.current = onChange;
  useEffect(() => {
    if (typeof EventSource === 'undefined') return undefined;
    const fire = debounce(() => latest.current(), ms);
    const source = new EventSource('/v1/events');
    for (const k of KINDS) source.addEventListener(k, fire);
    source.onmessage = fire;
    return () => {
      fire.cancel();
      source.close();
    };
  }, [ms]);
}
