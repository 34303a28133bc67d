version 1.0

# A scatter and its gather: each shard squares its number, one call sums the squares.
workflow scatter_gather {
  input {
    Int n = 5
  }
  scatter (i in range(n)) {
    call square { input: x = i }
  }
  call total { input: xs = square.y }
  output {
    Array[Int] squares = square.y
    Int sum = total.sum
    File report = total.report
  }
}

task square {
  input {
    Int x
  }
  command <<<
    echo $(( ~{x} * ~{x} ))
  >>>
  output {
    Int y = read_int(stdout())
  }
}

task total {
  input {
    Array[Int] xs
  }
  command <<<
    printf '%s\n' ~{sep=" " xs} > report.txt
    echo $(( 0 + ~{sep=" + " xs} ))
  >>>
  output {
    Int sum = read_int(stdout())
    File report = "report.txt"
  }
}
