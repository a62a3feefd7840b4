export default function Login() {
  return <section><h1>Login</h1></section>;
}
