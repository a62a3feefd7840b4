export default function Usage() {
  return <section><h1>Usage</h1></section>;
}
