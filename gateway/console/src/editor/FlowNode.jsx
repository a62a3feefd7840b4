// A node on the canvas: its id, kind, named outputs as labelled handles,
// a loop's body inside it, and a link to a called workflow.
import { memo } from 'react';
import { Handle, Position } from '@xyflow/react';
import { Link } from '../router.jsx';
import { bodyOf, outputsOf } from './doc.js';

function FlowNode({ data, selected }) {
  const { node, status, problem, readOnly, steps } = data;
  const outs = outputsOf(node);
  const body = bodyOf(node);
  const called = node.kind === 'call_workflow' && node.config && (node.config.workflow_id || node.config.workflow);
  const cls = ['fm-node', `prim-${node.type}`, outs.length ? 'has-outs' : '', status ? `st-${status}` : '', problem ? 'has-problem' : '', selected ? 'is-selected' : '']
    .filter(Boolean)
    .join(' ');
  return (
    <div className={cls} data-node-id={node.id} aria-label={`Node ${node.id}`} style={outs.length > 2 ? { minHeight: 22 * outs.length + 12 } : undefined}>
      {node.type !== 'trigger' && <Handle type="target" position={Position.Left} isConnectable={!readOnly} aria-label={`Into ${node.id}`} />}
      <div className="fm-node-head">
        <span className="fm-node-id">{node.id}</span>
        {status && <span className={`fm-badge st-${status}`}>{status}</span>}
      </div>
      <div className="fm-node-kind">
        {node.type} · {node.kind}
      </div>
      {called && typeof called === 'string' && (
        <Link className="fm-node-link nodrag" to={`/workflows/${encodeURIComponent(called)}`}>
          open called workflow
        </Link>
      )}
      {body && (
        <ul className="fm-body" aria-label={`Body of ${node.id}`}>
          {body.nodes.slice(0, 8).map((b) => (
            <li key={b.id}>
              {b.id} <span className="muted">{b.kind}</span>
              {steps && steps[b.id] && (
                <span className="fm-steps-count" aria-label={`Iterations of ${b.id}`}>
                  {Object.entries(steps[b.id])
                    .map(([st, c]) => `${c} ${st}`)
                    .join(', ')}
                </span>
              )}
            </li>
          ))}
          {body.nodes.length > 8 && <li className="muted">… {body.nodes.length - 8} more</li>}
          {body.nodes.length === 0 && <li className="muted">empty body</li>}
        </ul>
      )}
      {outs.length === 0 ? (
        <Handle type="source" position={Position.Right} isConnectable={!readOnly} aria-label={`Out of ${node.id}`} />
      ) : (
        outs.map((o, i) => (
          <div key={o} className="fm-out" style={{ top: `${((i + 1) * 100) / (outs.length + 1)}%` }}>
            <span className="fm-out-label">{o}</span>
            <Handle
              id={o}
              type="source"
              position={Position.Right}
              isConnectable={!readOnly}
              aria-label={`Out of ${node.id} on ${o}`}
              style={{ top: '50%' }}
            />
          </div>
        ))
      )}
    </div>
  );
}

export default memo(FlowNode);
