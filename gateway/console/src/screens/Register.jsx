export default function Register() {
  return <section><h1>Register</h1></section>;
}
