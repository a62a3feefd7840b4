export default function Settings() {
  return <section><h1>Settings</h1></section>;
}
