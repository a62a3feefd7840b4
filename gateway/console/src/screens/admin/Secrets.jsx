export default function Secrets() {
  return <section><h1>Secrets</h1></section>;
}
