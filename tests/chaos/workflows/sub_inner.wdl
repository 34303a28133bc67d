version 1.0

workflow shout {
  input {
    String word
  }
  call upper { input: s = word }
  String marked = upper.out + "!"
  call keep { input: s = marked }
  output {
    String loud = marked
    File file = keep.file
  }
}

task upper {
  input {
    String s
  }
  command <<<
    echo "~{s}" | tr a-z A-Z
  >>>
  output {
    String out = read_string(stdout())
  }
}

task keep {
  input {
    String s
  }
  command <<<
    echo "~{s}" > kept.txt
  >>>
  output {
    File file = "kept.txt"
  }
}
