export default function Keys() {
  return <section><h1>Keys</h1></section>;
}
