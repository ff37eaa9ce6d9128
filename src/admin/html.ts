/** Escapes text for HTML element content and double-quoted attributes. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/**
 * A self-contained admin page: inline styles, no scripts, no external assets (the admin
 * listener must work on networks without internet, and must not make browsers fetch anything).
 */
export function htmlPage(title: string, body: string): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title>
<style>
body{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#1d2327}
h1{font-size:1.5rem}h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #ddd}
table{border-collapse:collapse}td,th{text-align:left;padding:.2rem .8rem .2rem 0;vertical-align:top}
code,pre{font:13px ui-monospace,monospace;background:#f4f5f6}pre{padding:.6rem;overflow-x:auto}
.ok{color:#137333}.bad{color:#b3261e}.note{background:#fff8e1;padding:.5rem .8rem}
</style></head><body>
${body}
</body></html>
`;
}
