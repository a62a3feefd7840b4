export default function Audit() {
  return <section><h1>Audit</h1></section>;
}
