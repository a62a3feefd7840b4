export default function Executions() {
  return <section><h1>Executions</h1></section>;
}
