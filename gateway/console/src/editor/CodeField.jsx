// A code editor with syntax highlighting; CodeMirror is loaded only when
// a code node's form is opened.
import { useEffect, useRef, useState } from 'react';

export default function CodeField({ id, value, language, readOnly, onChange }) {
  const host = useRef(null);
  const view = useRef(null);
  const latest = useRef(onChange);
  latest.current = onChange;
  const [failed, setFailed] = useState(null);

  useEffect(() => {
    let gone = false;
    (async () => {
      try {
        const [{ EditorView, basicSetup }, lang] = await Promise.all([
          import('codemirror'),
          language === 'python' ? import('@codemirror/lang-python').then((m) => m.python()) : import('@codemirror/lang-javascript').then((m) => m.javascript()),
        ]);
        if (gone) return;
        view.current = new EditorView({
          parent: host.current,
          doc: value,
          extensions: [
              basicSetup,
              lang,
              EditorView.editable.of(!readOnly),
              EditorView.contentAttributes.of({ 'aria-label': 'Source code', id }),
              EditorView.updateListener.of((u) => {
                if (u.docChanged) latest.current(u.state.doc.toString());
              }),
          ],
        });
      } catch (e) {
        setFailed(e.message);
      }
    })();
    return () => {
      gone = true;
      if (view.current) view.current.destroy();
      view.current = null;
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [language, readOnly]);

  // A change from outside (undo, the JSON view) replaces the text.
  useEffect(() => {
    const v = view.current;
    if (v && v.state.doc.toString() !== value) {
      v.dispatch({ changes: { from: 0, to: v.state.doc.length, insert: value } });
    }
  }, [value]);

  if (failed) {
    return <textarea id={id} className="mono" rows={10} value={value} readOnly={readOnly} onChange={(e) => onChange(e.target.value)} />;
  }
  return <div className="fm-code" ref={host} />;
}
