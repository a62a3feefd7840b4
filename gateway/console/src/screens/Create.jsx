export default function Create() {
  return <section><h1>Create</h1></section>;
}
