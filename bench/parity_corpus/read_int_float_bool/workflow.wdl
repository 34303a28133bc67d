version 1.0
task t {
  command <<< echo 42 > i; echo 3.5 > f; echo true > b; echo "  spaced  " > s >>>
  output { Int i = read_int("i")  Float f = read_float("f")  Boolean b = read_boolean("b")  String s = read_string("s") }
}
