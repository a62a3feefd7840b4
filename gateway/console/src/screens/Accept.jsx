export default function Accept() {
  return <section><h1>Accept</h1></section>;
}
