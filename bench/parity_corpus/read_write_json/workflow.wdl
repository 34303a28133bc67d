version 1.0
struct Sample { String name  Int reads }
workflow w {
  Sample s = object { name: "s1", reads: 100 }
  call t { input: j = write_json(s) }
  output { Map[String, Int] parsed = t.parsed  Int reads = t.reads }
}
task t {
  input { File j }
  command <<<
    python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(json.dumps({d["name"]: d["reads"] * 2}))' ~{j}
  >>>
  output { Map[String, Int] parsed = read_json(stdout())  Int reads = parsed["s1"] }
}
