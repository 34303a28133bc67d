version 1.0
struct Person { String name  Int age }
task describe {
  input { Person p }
  command <<< echo "~{p.name} is ~{p.age}" >>>
  output { String line = read_string(stdout())  Person older = object { name: p.name, age: p.age + 1 } }
}
