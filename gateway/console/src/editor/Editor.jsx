export default function Editor() {
  return <section><h1>Editor</h1></section>;
}
