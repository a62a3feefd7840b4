export default function Run() {
  return <section><h1>Run</h1></section>;
}
